"""The serving client refuses any server outside the policy before it sends a single byte.

Each unverified server here is a TLS server that records every application byte it
receives: after the refusal it must have received nothing (no request line, no header,
no input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from securetf.client import ServingClient
from securetf.errors import AuthenticationError, UsageError
from tests.serve.support import (
    POLICY,
    SERVICE,
    RecordingTlsServer,
    ServerProcess,
    TestCa,
    TlsPair,
    self_signed_pair,
)

SECRET_INPUT = [[4.2, 4.2, 4.2, 4.2]]


def _wrong_ca(tmp: Path, ca: TestCa) -> TlsPair:
    return TestCa.create("another policy's CA").instance(tmp)


def _self_signed(tmp: Path, ca: TestCa) -> TlsPair:
    return self_signed_pair(tmp)


def _other_service(tmp: Path, ca: TestCa) -> TlsPair:
    return ca.instance(tmp, service="trainer")


def _other_policy(tmp: Path, ca: TestCa) -> TlsPair:
    return ca.instance(tmp, policy="elsewhere")


IMPOSTORS = [
    pytest.param(_wrong_ca, id="another-ca"),
    pytest.param(_self_signed, id="self-signed"),
    pytest.param(_other_service, id="another-service"),
    pytest.param(_other_policy, id="another-policy-name"),
]


@pytest.fixture(params=IMPOSTORS)
def impostor(
    request: pytest.FixtureRequest, tmp_path: Path, policy_ca: TestCa
) -> Iterator[RecordingTlsServer]:
    make: Callable[[Path, TestCa], TlsPair] = request.param
    server = RecordingTlsServer(make(tmp_path, policy_ca))
    yield server
    server.close()


def _client(port: int, ca: TestCa) -> ServingClient:
    return ServingClient(
        f"https://127.0.0.1:{port}",
        ca_pem=ca.pem,
        service=SERVICE,
        policy=POLICY,
        grpc_address=f"127.0.0.1:{port}",
        timeout=3,
    )


def test_rest_predict_refuses_and_sends_nothing(
    impostor: RecordingTlsServer, policy_ca: TestCa
) -> None:
    with _client(impostor.port, policy_ca) as client, pytest.raises(AuthenticationError):
        client.predict("dense", SECRET_INPUT)
    impostor.close()
    assert impostor.connections >= 1  # it did try: the refusal came from the handshake
    assert bytes(impostor.received) == b""


def test_verify_refuses(impostor: RecordingTlsServer, policy_ca: TestCa) -> None:
    with _client(impostor.port, policy_ca) as client, pytest.raises(AuthenticationError):
        client.verify()
    impostor.close()
    assert bytes(impostor.received) == b""


def test_grpc_predict_refuses_and_sends_nothing(
    impostor: RecordingTlsServer, policy_ca: TestCa
) -> None:
    with _client(impostor.port, policy_ca) as client, pytest.raises(AuthenticationError):
        client.grpc_predict("dense", {"x": np.asarray(SECRET_INPUT, np.float32)})
    impostor.close()
    assert bytes(impostor.received) == b""


def test_the_real_server_is_refused_when_expecting_another_service(
    server: ServerProcess, policy_ca: TestCa
) -> None:
    with (
        ServingClient(server.url, ca_pem=policy_ca.pem, service="trainer", policy=POLICY) as client,
        pytest.raises(AuthenticationError, match=r"trainer\.clinic"),
    ):
        client.predict("dense", SECRET_INPUT)


def test_the_real_server_verifies_by_its_service_name_not_its_address(
    server: ServerProcess, policy_ca: TestCa
) -> None:
    with ServingClient(server.url, ca_pem=policy_ca.pem, service=SERVICE, policy=POLICY) as c:
        cert = c.verify()
        assert len(c.predict("dense", SECRET_INPUT)) == 1
    assert cert.subject.rfc4514_string() == f"O={POLICY},CN={SERVICE}-0"


def test_a_leaf_certificate_is_not_accepted_as_the_trust_anchor(tmp_path: Path) -> None:
    leaf = TestCa.create().instance(tmp_path)
    with pytest.raises(UsageError, match="not a CA"):
        ServingClient("https://127.0.0.1:1", ca_pem=leaf.cert.read_bytes(), service="s", policy="p")


def test_plain_http_urls_are_refused(policy_ca: TestCa) -> None:
    with pytest.raises(UsageError, match="https"):
        ServingClient("http://127.0.0.1:1", ca_pem=policy_ca.pem, service="s", policy="p")

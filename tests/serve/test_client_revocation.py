"""A serving client built with a CAS refuses a server whose certificate is no longer live.

Attack (THREATS.md, "a revoked or superseded instance"): an operator keeps serving with the
certificate of an instance that a new provisioning of its slot superseded, or that a policy
update revoked. The certificate still chains to the policy's CA and names the service, so
only the CAS can tell. The servers here are TLS servers that record every application byte
they receive; after the refusal they must have received nothing. Real CAS, real
provisioning, real TLS: nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from securetf.client import ServingClient
from securetf.client.liveness import LIVE_TTL, LivenessChecker
from securetf.errors import AuthenticationError, UsageError
from tests.client.real_cas import Issued, RealCas, real_cas
from tests.serve import support
from tests.serve.support import POLICY, RecordingTlsServer, ServerProcess, TlsPair, rows
from tests.serve.support import SERVICE as SERVING_SERVICE

SECRET_INPUT = [[4.2, 4.2, 4.2, 4.2]]
SERVICE = "train"  # an instance service of the test policy, here serving a model


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCas]:
    yield from real_cas(tmp_path_factory.mktemp("serving-cas"))


def _superseded(cas: RealCas, tmp: Path) -> Issued:
    """Slot train-0 provisioned twice: the first certificate, no longer live."""
    policy = cas.new_policy()
    first = cas.provision(policy, tmp / "first")
    cas.provision(policy, tmp / "second")
    return first


def _revoked(cas: RealCas, tmp: Path) -> Issued:
    """train-0, then an update that no longer allows its measurement."""
    policy = cas.new_policy()
    issued = cas.provision(policy, tmp / "revoked")
    cas.update(policy, measurement=b"\x07" * 32)
    return issued


def _live(cas: RealCas, tmp: Path) -> Issued:
    return cas.provision(cas.new_policy(), tmp / "live")


NOT_LIVE = [
    pytest.param(_superseded, "superseded", id="superseded"),
    pytest.param(_revoked, "measurement", id="revoked-by-update"),
]


def _recorder(issued: Issued) -> RecordingTlsServer:
    return RecordingTlsServer(TlsPair(issued.cert, issued.key))


def _client(cas: RealCas, issued: Issued, port: int) -> ServingClient:
    with cas.client() as client:
        return ServingClient.from_cas(
            client,
            f"https://127.0.0.1:{port}",
            policy=issued.policy,
            service=SERVICE,
            grpc_address=f"127.0.0.1:{port}",
            timeout=3,
        )


def _predict(client: ServingClient) -> object:
    return client.predict("dense", SECRET_INPUT)


def _verify(client: ServingClient) -> object:
    return client.verify()


def _grpc_predict(client: ServingClient) -> object:
    return client.grpc_predict("dense", {"x": np.asarray(SECRET_INPUT, np.float32)})


@pytest.mark.parametrize("call", [_predict, _verify, _grpc_predict], ids=["rest", "verify", "grpc"])
@pytest.mark.parametrize(("make", "reason"), NOT_LIVE)
def test_a_server_that_is_not_live_is_refused_before_a_byte_is_sent(
    cas: RealCas,
    tmp_path: Path,
    make: Callable[[RealCas, Path], Issued],
    reason: str,
    call: Callable[[ServingClient], object],
) -> None:
    issued = make(cas, tmp_path)
    server = _recorder(issued)
    try:
        with (
            _client(cas, issued, server.port) as client,
            pytest.raises(AuthenticationError, match=reason),
        ):
            call(client)
    finally:
        server.close()
    assert server.connections >= 1  # it did connect: the refusal came after the handshake
    assert bytes(server.received) == b""


@pytest.mark.parametrize(
    ("call", "error", "sent"),
    [
        (_predict, UsageError, b"POST /v1/models/dense:predict"),
        (_grpc_predict, AuthenticationError, b"PRI * HTTP/2.0"),
    ],
    ids=["rest", "grpc"],
)
def test_control_a_live_server_receives_the_request(
    cas: RealCas,
    tmp_path: Path,
    call: Callable[[ServingClient], object],
    error: type[Exception],
    sent: bytes,
) -> None:
    """The same setup with a live certificate: the request leaves (the recorder never
    answers, so the client then fails)."""
    issued = _live(cas, tmp_path)
    server = _recorder(issued)
    try:
        with _client(cas, issued, server.port) as client, pytest.raises(error):
            call(client)
    finally:
        server.close()
    assert bytes(server.received).startswith(sent)


def test_a_pinned_grpc_channel_accepts_no_other_certificate(tmp_path: Path) -> None:
    """The gRPC design rests on this: a channel pinned to one certificate refuses another
    of the same CA and name (a server swapped after the client's own handshake)."""
    from securetf.client._serving_grpc import GrpcPredictor

    ca = support.TestCa.create()
    pinned, other = ca.instance(tmp_path / "pinned"), ca.instance(tmp_path / "other")
    server = RecordingTlsServer(other)
    predictor = GrpcPredictor(
        f"127.0.0.1:{server.port}",
        trust_pem=pinned.cert.read_bytes(),
        expected_name=f"{SERVING_SERVICE}.{POLICY}",
        client_files=(None, None),
        timeout=3,
    )
    try:
        with pytest.raises(AuthenticationError, match="no verified TLS connection"):
            predictor.predict("dense", {"x": np.asarray(SECRET_INPUT, np.float32)}, None)
    finally:
        predictor.close()
        server.close()
    assert server.connections >= 1
    assert bytes(server.received) == b""


def test_a_client_without_a_cas_does_not_check_revocation(cas: RealCas, tmp_path: Path) -> None:
    """Documented: the policy CA alone cannot tell a superseded certificate from a live one."""
    issued = _superseded(cas, tmp_path)
    server = _recorder(issued)
    client = ServingClient(
        f"https://127.0.0.1:{server.port}",
        ca_pem=issued.ca.read_bytes(),
        service=SERVICE,
        policy=issued.policy,
        timeout=3,
    )
    try:
        with client:
            client.verify()
    finally:
        server.close()


# -- a real server ---------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_real_server_is_used_while_live_and_refused_once_superseded(
    cas: RealCas, model_dir: Path, tmp_path: Path
) -> None:
    """REST and gRPC work through the checks; after a new provisioning of the server's slot,
    the next gRPC call (once the live answer is older than the TTL) and the next new REST
    connection are refused."""
    issued = _live(cas, tmp_path)
    server = ServerProcess(
        model_dir,
        TlsPair(issued.cert, issued.key),
        issued.ca.read_bytes(),
        log=tmp_path / "serve.log",
    )
    server.start()
    clock = Clock()
    try:
        with cas.client() as status:
            checker = LivenessChecker(status.instance_status, policy=issued.policy, monotonic=clock)
            client = ServingClient(
                server.url,
                ca_pem=issued.ca.read_bytes(),
                service=SERVICE,
                policy=issued.policy,
                grpc_address=f"127.0.0.1:{server.grpc_port}",
                liveness=checker,
            )
            with client:
                x = rows(2)
                name = next(
                    iter(
                        client.metadata("dense")["metadata"]["signature_def"]["signature_def"][
                            "serving_default"
                        ]["inputs"]
                    )
                )
                rest = np.asarray(client.predict("dense", x))
                grpc = client.grpc_predict("dense", {name: x})["output_0"]
                np.testing.assert_allclose(grpc, rest, atol=1e-6)
                cas.provision(issued.policy, tmp_path / "again")  # supersedes the server's
                clock.now += LIVE_TTL + 1
                with pytest.raises(AuthenticationError, match="superseded"):
                    client.grpc_predict("dense", {name: x})
            with (
                ServingClient(
                    server.url,
                    ca_pem=issued.ca.read_bytes(),
                    service=SERVICE,
                    policy=issued.policy,
                    liveness=checker,
                ) as fresh,
                pytest.raises(AuthenticationError, match="superseded"),
            ):
                fresh.predict("dense", x)
    finally:
        server.stop()

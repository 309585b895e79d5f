"""``securetf serve --client-ca F``: only clients with a certificate F issued are served, over
REST and gRPC; any other client is refused in the handshake, before its request is handled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from securetf.client import ServingClient
from securetf.errors import Error
from tests.serve.support import POLICY, SERVICE, ServerProcess, TestCa, TlsPair, rows


@pytest.fixture(scope="module")
def clients_ca() -> TestCa:
    return TestCa.create("clients' CA")


@pytest.fixture(scope="module")
def mtls_server(
    model_dir: Path,
    policy_ca: TestCa,
    clients_ca: TestCa,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("mtls")
    (tmp / "clients-ca.pem").write_bytes(clients_ca.pem)
    proc = ServerProcess(
        model_dir,
        policy_ca.instance(tmp / "tls"),
        policy_ca.pem,
        log=tmp / "serve.log",
        extra=["--client-ca", str(tmp / "clients-ca.pem")],
        client=clients_ca.instance(tmp / "probe", service="probe"),
    )
    proc.start()
    yield proc
    proc.stop()


def _client(server: ServerProcess, cert: TlsPair | None) -> ServingClient:
    assert server.ca_pem is not None
    return ServingClient(
        server.url,
        ca_pem=server.ca_pem,
        service=SERVICE,
        policy=POLICY,
        grpc_address=f"127.0.0.1:{server.grpc_port}",
        client_cert=cert.cert if cert else None,
        client_key=cert.key if cert else None,
        timeout=5.0,
    )


def _predict_count(server: ServerProcess) -> float:
    """Predict requests the server handled for ``dense`` (any status), from its metrics."""
    with server.http() as http:
        text = http.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("securetf_serve_requests_total{") and 'model="dense"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _input_name(client: ServingClient) -> str:
    sig = client.metadata("dense")["metadata"]["signature_def"]["signature_def"]
    return str(next(iter(sig["serving_default"]["inputs"])))


def test_a_client_with_a_certificate_of_the_client_ca_is_served(
    mtls_server: ServerProcess, clients_ca: TestCa, tmp_path: Path
) -> None:
    x = rows(2)
    with _client(mtls_server, clients_ca.instance(tmp_path, service="frontend")) as client:
        rest = np.asarray(client.predict("dense", x))
        grpc = client.grpc_predict("dense", {_input_name(client): x})
    assert rest.shape == (2, 3)
    np.testing.assert_allclose(next(iter(grpc.values())), rest, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_any_other_client_is_refused_before_its_request_is_handled(
    mtls_server: ServerProcess, tmp_path: Path, who: str
) -> None:
    cert = None if who == "no certificate" else TestCa.create("stranger").instance(tmp_path)
    before = _predict_count(mtls_server)
    with _client(mtls_server, cert) as client:
        with pytest.raises(Error):
            client.predict("dense", rows(1))
        with pytest.raises(Error):
            client.grpc_predict("dense", {"keras_tensor": rows(1)})
    assert _predict_count(mtls_server) == before

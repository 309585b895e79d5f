"""A client of ``securetf serve`` that verifies the server before it sends a single byte.

The server must present a certificate that chains to the expected policy's CA (the only
trust anchor; the system's CAs play no part) and names the serving service: instance
certificates carry the SAN ``<service>.<policy>``, which is checked whatever host or IP
the client connects to. A server that fails either check is refused during the TLS
handshake, before any request line, header or input leaves the client.

Built with a CAS (:meth:`ServingClient.from_cas`, or ``liveness=``), the client also asks
the CAS, on every new connection and before it sends anything, whether the server's
certificate still speaks for a live instance (docs/serving.md, "Revocation"). Without
one, it cannot tell a superseded or revoked instance's certificate from a live one.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from securetf import errors
from securetf.client._serving_tls import (
    cert_failure,
    handshake,
    host_port,
    refused,
    tls_context,
)
from securetf.client.cas import CasClient
from securetf.client.liveness import LivenessChecker
from securetf.errors import Error, UsageError

if TYPE_CHECKING:
    from securetf.client._serving_grpc import GrpcPredictor

__all__ = ["ServingClient", "serving_name"]

TIMEOUT = 30.0


def serving_name(service: str, policy: str) -> str:
    """The DNS name every instance certificate of ``service`` under ``policy`` carries."""
    if not service or not policy or "." in service:
        raise UsageError("a serving service and a policy name are required")
    return f"{service}.{policy}"


class ServingClient:
    """Predicts through a verified ``securetf serve`` (REST, and gRPC when given its address)."""

    def __init__(
        self,
        url: str,
        *,
        ca_pem: bytes | str,
        service: str,
        policy: str,
        grpc_address: str | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        timeout: float = TIMEOUT,
        liveness: LivenessChecker | None = None,
    ) -> None:
        if isinstance(ca_pem, str):
            ca_pem = ca_pem.encode("ascii", "replace")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise UsageError(f"the server URL must be https://HOST:PORT, not {url!r}")
        if liveness is not None and liveness.policy != policy:
            raise UsageError(
                f"the liveness check is for policy {liveness.policy!r}, not {policy!r}"
            )
        self.url = url.rstrip("/")
        self.expected_name = serving_name(service, policy)
        self._address = (parts.hostname, parts.port or 443)
        self._ca_pem = ca_pem
        self._client_files = (client_cert, client_key)
        self._grpc_address = grpc_address
        self._timeout = timeout
        self._liveness = liveness
        self.ssl_context = tls_context(ca_pem, client_cert, client_key, liveness)
        self._http = httpx.Client(base_url=self.url, verify=self.ssl_context, timeout=timeout)
        self._grpc: GrpcPredictor | None = None
        self._grpc_pin = b""  # with a CAS: the one server certificate the channel accepts
        self._owned: CasClient | None = None

    @classmethod
    def from_cas(
        cls, cas: CasClient, url: str, *, policy: str, service: str, **kw: Any
    ) -> ServingClient:
        """Trust the policy's CA as the attested CAS states it, and accept the server only
        while that CAS says its certificate is live (asked on every new connection)."""
        ca_pem = cas.policy(policy).ca_certificate_pem
        status = CasClient(cas.pins, timeout=kw.get("timeout", TIMEOUT))  # closed with this
        try:
            liveness = LivenessChecker(status.instance_status, policy=policy)
            client = cls(
                url, ca_pem=ca_pem, service=service, policy=policy, liveness=liveness, **kw
            )
        except BaseException:
            status.close()
            raise
        client._owned = status
        return client

    def close(self) -> None:
        self._http.close()
        self._drop_grpc()
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- verification ------------------------------------------------------------------
    def verify(self) -> x509.Certificate:
        """Handshake with the server, check its certificate (and, with a CAS, that it is
        live), send nothing; return the certificate."""
        der = handshake(self.ssl_context, self._address, self.expected_name, self._timeout)
        return x509.load_der_x509_certificate(der)

    # -- REST --------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if content is not None else {}
        try:
            response = self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                extensions={"sni_hostname": self.expected_name},
            )
        except httpx.HTTPError as exc:
            cert = cert_failure(exc)
            if cert is not None:
                raise refused(self.url, self.expected_name, cert) from None
            raise UsageError(f"cannot reach the server at {self.url}: {exc}") from exc
        try:
            doc = response.json()
        except ValueError:
            doc = {"error": response.text[:200]}
        if response.status_code >= 400:
            message = str(doc.get("error", doc)) if isinstance(doc, dict) else str(doc)
            if response.status_code == 404:
                raise errors.NotFoundError(message)
            if response.status_code < 500:
                raise UsageError(message)
            raise Error(f"the server failed: {message}")
        return doc

    @staticmethod
    def _path(model: str, version: int | None) -> str:
        return f"/v1/models/{model}" + ("" if version is None else f"/versions/{int(version)}")

    def status(self, model: str, version: int | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = self._call("GET", self._path(model, version))
        return doc

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = self._call("GET", self._path(model, version) + "/metadata")
        return doc

    def predict(self, model: str, instances: Any, version: int | None = None) -> Any:
        """Row format: ``instances`` in, ``predictions`` out."""
        if hasattr(instances, "tolist"):
            instances = instances.tolist()
        doc = self._call("POST", self._path(model, version) + ":predict", {"instances": instances})
        return doc["predictions"]

    def predict_columns(self, model: str, inputs: Any, version: int | None = None) -> Any:
        """Columnar format: ``inputs`` in, ``outputs`` out."""
        if hasattr(inputs, "tolist"):
            inputs = inputs.tolist()
        elif isinstance(inputs, dict):
            inputs = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in inputs.items()}
        doc = self._call("POST", self._path(model, version) + ":predict", {"inputs": inputs})
        return doc["outputs"]

    # -- gRPC --------------------------------------------------------------------------
    def grpc_predict(
        self, model: str, inputs: dict[str, Any], version: int | None = None
    ) -> dict[str, Any]:
        """``PredictionService/Predict`` with the same verification; arrays in and out."""
        predictor = self._grpc_predictor()
        try:
            return predictor.predict(model, inputs, version)
        except errors.AuthenticationError:
            self._drop_grpc()  # the next call verifies (and pins) afresh
            raise

    def _grpc_predictor(self) -> GrpcPredictor:
        from securetf.client._serving_grpc import GrpcPredictor

        if self._grpc_address is None:
            raise UsageError("no gRPC address was given for this server")
        if self._grpc is not None and self._liveness is not None:
            try:  # before every call: the pinned certificate is still live
                self._liveness.check(self._grpc_pin)
            except Error:
                self._drop_grpc()
                raise
        if self._grpc is None:
            trust = self._ca_pem
            if self._liveness is not None:
                # gRPC's TLS offers no hook after its handshake. So: a handshake of our own
                # (chain, name, liveness; nothing sent), then a channel that accepts exactly
                # the certificate verified there (gRPC trusts a pinned leaf as its root).
                ctx = tls_context(self._ca_pem, *self._client_files, self._liveness)
                ctx.set_alpn_protocols(["h2"])
                where = host_port(self._grpc_address, 443)
                self._grpc_pin = handshake(ctx, where, self.expected_name, self._timeout)
                trust = ssl.DER_cert_to_PEM_cert(self._grpc_pin).encode("ascii")
            self._grpc = GrpcPredictor(
                self._grpc_address,
                trust_pem=trust,
                expected_name=self.expected_name,
                client_files=self._client_files,
                timeout=self._timeout,
            )
        return self._grpc

    def _drop_grpc(self) -> None:
        if self._grpc is not None:
            self._grpc.close()
        self._grpc, self._grpc_pin = None, b""

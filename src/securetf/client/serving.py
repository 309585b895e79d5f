"""A client of ``securetf serve`` that verifies the server before it sends a single byte.

The server must present a certificate that chains to the expected policy's CA (the only
trust anchor; the system's CAs play no part) and names the serving service: instance
certificates carry the SAN ``<service>.<policy>``, which is checked whatever host or IP
the client connects to. A server that fails either check is refused during the TLS
handshake, before any request line, header or input leaves the client.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from securetf import errors
from securetf.client.cas import CasClient
from securetf.errors import AuthenticationError, Error, UsageError

__all__ = ["ServingClient", "serving_name"]

TIMEOUT = 30.0


def serving_name(service: str, policy: str) -> str:
    """The DNS name every instance certificate of ``service`` under ``policy`` carries."""
    if not service or not policy or "." in service:
        raise UsageError("a serving service and a policy name are required")
    return f"{service}.{policy}"


def _tls_context(
    ca_pem: bytes, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound):
        raise UsageError("the expected CA is not a PEM CA certificate") from None
    if not constraints.ca:
        raise UsageError("the expected CA certificate is not a CA")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    if (client_cert is None) != (client_key is None):
        raise UsageError("a client certificate and its key go together")
    if client_cert is not None and client_key is not None:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


def _refused(where: str, name: str, exc: BaseException) -> AuthenticationError:
    return AuthenticationError(
        f"refused the server at {where}: it is not {name} under the expected policy CA ({exc})"
    )


def _cert_failure(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
    ) -> None:
        if isinstance(ca_pem, str):
            ca_pem = ca_pem.encode("ascii", "replace")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise UsageError(f"the server URL must be https://HOST:PORT, not {url!r}")
        self.url = url.rstrip("/")
        self.expected_name = serving_name(service, policy)
        self._ca_pem = ca_pem
        self._client_files = (client_cert, client_key)
        self._grpc_address = grpc_address
        self._timeout = timeout
        self.ssl_context = _tls_context(ca_pem, client_cert, client_key)
        self._address = (parts.hostname, parts.port or 443)
        self._http = httpx.Client(base_url=self.url, verify=self.ssl_context, timeout=timeout)
        self._grpc: Any = None

    @classmethod
    def from_cas(
        cls, cas: CasClient, url: str, *, policy: str, service: str, **kw: Any
    ) -> ServingClient:
        """Trust the policy's CA as the attested CAS states it."""
        return cls(
            url, ca_pem=cas.policy(policy).ca_certificate_pem, service=service, policy=policy, **kw
        )

    def close(self) -> None:
        self._http.close()
        if self._grpc is not None:
            self._grpc.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- verification ------------------------------------------------------------------
    def verify(self) -> x509.Certificate:
        """Handshake with the server, check its certificate, send nothing; return the cert."""
        host, port = self._address
        try:
            with (
                socket.create_connection((host, port), timeout=self._timeout) as sock,
                self.ssl_context.wrap_socket(sock, server_hostname=self.expected_name) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except ssl.SSLCertVerificationError as exc:
            raise _refused(f"{host}:{port}", self.expected_name, exc) from None
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot reach the server at {host}:{port}: {exc}") from exc
        if der is None:
            raise AuthenticationError(f"the server at {host}:{port} presented no certificate")
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
            cert = _cert_failure(exc)
            if cert is not None:
                raise _refused(self.url, self.expected_name, cert) from None
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
        from securetf.client._serving_grpc import GrpcPredictor

        if self._grpc is None:
            if self._grpc_address is None:
                raise UsageError("no gRPC address was given for this server")
            self._grpc = GrpcPredictor(
                self._grpc_address,
                ca_pem=self._ca_pem,
                expected_name=self.expected_name,
                client_files=self._client_files,
                timeout=self._timeout,
            )
        result: dict[str, Any] = self._grpc.predict(model, inputs, version)
        return result

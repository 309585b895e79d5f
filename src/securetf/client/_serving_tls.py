"""The serving client's TLS: contexts that trust only the policy CA, and a bare handshake.

With a :class:`~securetf.client.liveness.LivenessChecker`, every handshake also ends with
the CAS's liveness check (``_live_tls``), before the connection is handed to anyone.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from securetf.client._live_tls import live_context
from securetf.client.liveness import LivenessChecker
from securetf.errors import AuthenticationError, UsageError


def tls_context(
    ca_pem: bytes,
    client_cert: Path | None,
    client_key: Path | None,
    liveness: LivenessChecker | None,
) -> ssl.SSLContext:
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound):
        raise UsageError("the expected CA is not a PEM CA certificate") from None
    if not constraints.ca:
        raise UsageError("the expected CA certificate is not a CA")
    # Both verify the chain and the name; the live one then asks the CAS.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if liveness is None else live_context(liveness)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    if (client_cert is None) != (client_key is None):
        raise UsageError("a client certificate and its key go together")
    if client_cert is not None and client_key is not None:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


def refused(where: str, name: str, exc: BaseException) -> AuthenticationError:
    return AuthenticationError(
        f"refused the server at {where}: it is not {name} under the expected policy CA ({exc})"
    )


def cert_failure(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``, gRPC's form of an address."""
    parts = urlsplit(f"//{address}")
    try:
        port = parts.port or default_port
    except ValueError:
        raise UsageError(f"{address!r} is not HOST:PORT") from None
    if not parts.hostname:
        raise UsageError(f"{address!r} is not HOST:PORT")
    return parts.hostname, port


def handshake(ctx: ssl.SSLContext, address: tuple[str, int], name: str, timeout: float) -> bytes:
    """Complete a handshake with ``name``'s server at ``address``, send nothing; its certificate."""
    host, port = address
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise refused(f"{host}:{port}", name, exc) from None
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot reach the server at {host}:{port}: {exc}") from exc
    if der is None:
        raise AuthenticationError(f"the server at {host}:{port} presented no certificate")
    return der

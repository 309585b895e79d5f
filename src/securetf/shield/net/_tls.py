"""TLS 1.3 contexts for the tunnels: the instance certificate both ways, the policy CA only."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from securetf.shield.net._errors import NetShieldError


@dataclass(frozen=True)
class Identity:
    """The instance's certificate, key and its policy's CA certificate (PEM files)."""

    certificate: Path
    key: Path
    ca: Path


def _context(purpose: int, identity: Identity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(identity.certificate, identity.key)
        # Only the policy's CA: no system roots, so no certificate of anyone else passes.
        ctx.load_verify_locations(cafile=identity.ca)
    except (OSError, ssl.SSLError) as exc:
        raise NetShieldError(f"cannot load the instance certificate or CA: {exc}") from exc
    return ctx


def server_context(identity: Identity) -> ssl.SSLContext:
    """Accepts only clients with a certificate of the policy's CA (checked further by name)."""
    return _context(ssl.PROTOCOL_TLS_SERVER, identity)


def client_context(identity: Identity) -> ssl.SSLContext:
    """Checks the server's chain; the caller checks the instance's name in its certificate.

    No server name is sent (``server_hostname=None``): SNI travels in clear, and would name
    the service and the policy. ``_identity.require_instance`` checks the name instead.
    """
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, identity)
    ctx.check_hostname = False
    return ctx

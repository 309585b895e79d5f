"""Which service a verified peer certificate speaks for. Pure: the trust decision, no I/O.

The TLS layer has already verified the chain to the policy's CA (the only CA the contexts
load). A CAS-issued instance certificate has the common name ``<service>-<instance>``, the
organization ``<policy>`` and the DNS names ``<service>-<instance>.<policy>`` and
``<service>.<policy>``. The service is read from all of them together, so that an instance
name can never pass for a service of the same spelling (service ``a``'s instance ``a-0``
is not service ``a-0``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from securetf.shield.net._errors import PeerRefusedError


def _subject(cert: Mapping[str, Any], field: str) -> list[str]:
    return [value for rdn in cert.get("subject", ()) for key, value in rdn if key == field]


def peer_service(cert: Mapping[str, Any], *, policy: str, allowed: Iterable[str]) -> str:
    """The allowed service a certificate (``getpeercert()`` form) names, or PeerRefusedError.

    1. Some service must be allowed at all (an empty allow list refuses everyone).
    2. The organization is the policy, and there is exactly one common name.
    3. The common name is ``<service>-<n>``, and both DNS names of that instance are present.
    4. The service is one of ``allowed``.
    """
    allow = set(allowed)
    if not allow:
        raise PeerRefusedError("this service has no peers: every peer is refused")
    if _subject(cert, "organizationName") != [policy]:
        raise PeerRefusedError(f"the peer's certificate is not one of policy {policy!r}")
    names = _subject(cert, "commonName")
    if len(names) != 1:
        raise PeerRefusedError("the peer's certificate has no single common name")
    common = names[0]
    dns = {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    service, dash, number = common.rpartition("-")
    if (
        not dash
        or not number.isdigit()
        or f"{common}.{policy}" not in dns
        or f"{service}.{policy}" not in dns
    ):
        raise PeerRefusedError(
            f"the peer's certificate ({common!r}) is not an instance certificate"
        )
    if service not in allow:
        raise PeerRefusedError(
            f"the peer {common!r} is of service {service!r}, not one of {sorted(allow)}"
        )
    return service


def require_instance(cert: Mapping[str, Any], *, policy: str, name: str) -> None:
    """The certificate is that of instance ``name`` (``<service>-<n>``) of ``policy``.

    The tunnel sends no server name (SNI would show it in clear), so the instance is
    checked here, in the verified certificate, by its DNS name ``<name>.<policy>``.
    """
    dns = {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    if f"{name}.{policy}" not in dns:
        raise PeerRefusedError(f"the peer's certificate is not that of {name}")

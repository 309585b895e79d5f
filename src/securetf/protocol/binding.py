"""What TEE report data and signatures bind, byte for byte (docs/cas.md, "Bindings")."""

from __future__ import annotations

import hashlib
import json

from securetf.crypto import sha256

_PROVISION = b"securetf/v1 provision\x00"
_CAS = b"securetf/v1 cas-identity\x00"
_TAG = b"securetf/v1 tag-update\x00"

#: HKDF info of the sealed service configuration.
CONFIG_INFO = b"securetf/v1 service-config"


def provision_report_data(nonce: bytes, tls_public_der: bytes, box_public: bytes) -> bytes:
    """64 bytes binding the CAS's nonce and the runtime's fresh keys into the evidence."""
    return hashlib.sha512(_PROVISION + nonce + sha256(tls_public_der) + box_public).digest()


def cas_report_data(certificate_der: bytes, audit_public_raw: bytes, nonce: bytes) -> bytes:
    """64 bytes binding the CAS's TLS certificate, its audit key and the client's nonce
    into the CAS's own evidence."""
    return hashlib.sha512(_CAS + sha256(certificate_der) + audit_public_raw + nonce).digest()


def tag_update_message(
    *, policy: str, volume: str, serial: int, expected: str | None, tag: str, version: int
) -> bytes:
    """The exact bytes an instance signs to move a volume's tag."""
    body = {
        "expected": expected,
        "policy": policy,
        "serial": serial,
        "tag": tag,
        "version": version,
        "volume": volume,
    }
    return _TAG + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

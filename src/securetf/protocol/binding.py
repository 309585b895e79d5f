"""What TEE report data and signatures bind, byte for byte (docs/cas.md, "Bindings")."""

from __future__ import annotations

import hashlib
import json

from securetf.crypto import sha256
from securetf.errors import UsageError

# v2: the app measurement joined the binding (v1 bound the nonce and keys only).
_PROVISION = b"securetf/v2 provision\x00"
APP_MEASUREMENT_SIZE = 32
_CAS = b"securetf/v1 cas-identity\x00"
_TAG = b"securetf/v1 tag-update\x00"

#: HKDF info of the sealed service configuration.
CONFIG_INFO = b"securetf/v1 service-config"


def provision_report_data(
    nonce: bytes, tls_public_der: bytes, box_public: bytes, app_measurement: bytes
) -> bytes:
    """64 bytes binding the CAS's nonce, the runtime's fresh keys and the app's measurement
    (SHA-256, as ``securetf measure`` prints it) into the evidence.

    The key enters as its hash and the CAS's nonce and the box key have fixed sizes, so
    the concatenation is unambiguous.
    """
    if len(app_measurement) != APP_MEASUREMENT_SIZE:
        raise UsageError(f"an app measurement is {APP_MEASUREMENT_SIZE} bytes (SHA-256)")
    body = nonce + sha256(tls_public_der) + box_public + app_measurement
    return hashlib.sha512(_PROVISION + body).digest()


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

"""When DCAP collateral expires: the earliest nextUpdate or notAfter of its parts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cryptography import x509

from securetf.attestation import _dcap_binding
from securetf.attestation.dcap import MAX_COLLATERAL_SIZE, Collateral
from securetf.errors import AttestationError, UsageError

# ---------------------------------------------------------------------------------------
# Expiry of DCAP collateral
# ---------------------------------------------------------------------------------------

# dcap-qvl field -> the name of the signed object it holds (Intel PCS API).
_SIGNED_JSON = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}
_CRLS = {"root_ca_crl": "root CA CRL", "pck_crl": "PCK CRL"}
_CHAINS = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")
_OPTIONAL_CHAINS = ("pck_certificate_chain",)


def _iso_time(value: object, what: str) -> int:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {what} is not a date-time string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"collateral's {what} {value!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise UsageError(f"collateral's {what} {value!r} has no time zone (Intel writes ...Z)")
    return int(when.timestamp())


def _next_update(fields: dict[str, Any], key: str, name: str) -> int:
    text = fields.get(key)
    if not isinstance(text, str):
        raise UsageError(f"collateral's {key} is missing or not a JSON string (the {name})")
    try:
        signed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise UsageError(f"collateral's {key} is not JSON (the {name})") from None
    if not isinstance(signed, dict):
        raise UsageError(f"collateral's {key} is not a JSON object (the {name})")
    return _iso_time(signed.get("nextUpdate"), f"{name}.nextUpdate")


def _crl_next_update(value: object, key: str, name: str) -> int:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {key} is missing or not a hex or PEM string (the {name})")
    try:
        if value.lstrip().startswith("-----BEGIN"):
            crl = x509.load_pem_x509_crl(value.encode())
        else:
            crl = x509.load_der_x509_crl(bytes.fromhex(value))
        next_update = crl.next_update_utc
    except ValueError:
        raise UsageError(
            f"collateral's {key} is not an X.509 CRL, DER in hex or PEM (the {name})"
        ) from None
    if next_update is None:
        raise UsageError(f"collateral's {key} has no nextUpdate (the {name})")
    return int(next_update.timestamp())


def _chain_not_after(value: object, key: str) -> list[tuple[str, int]]:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {key} is missing or not a PEM string")
    try:
        certs = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise UsageError(f"collateral's {key} is not a PEM certificate chain") from None
    parts = []
    for cert in certs:
        names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else cert.subject.rfc4514_string()
        parts.append(
            (f"{key} certificate {cn!r} notAfter", int(cert.not_valid_after_utc.timestamp()))
        )
    return parts


def _collateral_fields(collateral_json: str) -> dict[str, Any]:
    if not isinstance(collateral_json, str):
        raise UsageError("collateral must be given as JSON text")
    if len(collateral_json) > MAX_COLLATERAL_SIZE:
        raise UsageError(f"collateral is larger than {MAX_COLLATERAL_SIZE} bytes")
    try:
        fields = json.loads(collateral_json)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"collateral is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise UsageError("collateral is not a JSON object")
    return fields


def _expiry_parts(collateral_json: str) -> list[tuple[str, int]]:
    """Each expiring part of DCAP collateral and when it stops being valid (unix seconds)."""
    fields = _collateral_fields(collateral_json)
    parts = [
        (f"{name}.nextUpdate", _next_update(fields, k, name)) for k, name in _SIGNED_JSON.items()
    ]
    parts += [
        (f"{name} nextUpdate", _crl_next_update(fields.get(k), k, name))
        for k, name in _CRLS.items()
    ]
    for key in _CHAINS:
        parts += _chain_not_after(fields.get(key), key)
    for key in _OPTIONAL_CHAINS:
        if fields.get(key) is not None:
            parts += _chain_not_after(fields[key], key)
    return parts


def _earliest(collateral_json: str) -> tuple[int, str]:
    what, when = min(_expiry_parts(collateral_json), key=lambda part: part[1])
    return when, what


def collateral_expiry(collateral_json: str) -> int:
    """The earliest time (unix seconds) at which any part of DCAP collateral stops being valid.

    The parts: ``tcbInfo.nextUpdate``, ``enclaveIdentity.nextUpdate`` (the QE identity),
    the ``nextUpdate`` of the root CA CRL and of the PCK CRL (DER in hex, or PEM), and the
    ``notAfter`` of every certificate of the issuer chains (and of the PCK chain, when the
    collateral carries one). Malformed collateral is a :class:`UsageError`.
    """
    return _earliest(collateral_json)[0]


def _collateral_text(collateral: Collateral) -> str:
    """``collateral`` back in dcap-qvl's JSON form (with its PCK chain, if it has one)."""
    text = _dcap_binding._call("cannot serialize collateral", collateral.native.to_json)
    if not isinstance(text, str):
        raise AttestationError("dcap-qvl returned collateral securetf does not understand")
    if collateral.pck_chain is not None:
        fields = json.loads(text)
        if "pck_certificate_chain" not in fields:
            chain = b"".join(cert.pem() for cert in collateral.pck_chain).decode()
            fields["pck_certificate_chain"] = chain
            text = json.dumps(fields)
    return text

"""The CAS's transparency-log key as clients learn it: origin, vkey, endorsement.

The origin (a checkpoint's first line, and the name of the log's note key) is
``securetf.cas/<16 hex>``: the first 8 bytes of the SHA-256 of the CAS's audit public key,
which clients pin after attesting the CAS, so two CAS deployments never share an origin.
The audit key signs the log's vkey (:func:`vkey_endorsement`); the identity document
carries both, so a client that pinned the audit key knows which key signs the log.
"""

from __future__ import annotations

from securetf.crypto import SigningKey, VerifyKey, sha256
from securetf.errors import AuthenticationError, Error, UsageError
from securetf.log import Ed25519Verifier, parse_vkey

__all__ = [
    "ORIGIN_PREFIX",
    "check_vkey_endorsement",
    "check_witnesses_endorsement",
    "log_origin",
    "vkey_endorsement",
    "witnesses_endorsement",
]

ORIGIN_PREFIX = "securetf.cas/"
_ENDORSEMENT_CONTEXT = b"securetf cas log vkey v1\n"
_WITNESSES_CONTEXT = b"securetf cas log witnesses v1\n"


def _witnesses_message(vkey: str, witnesses: list[str], threshold: int) -> bytes:
    lines = [vkey, str(threshold), *witnesses]
    return _WITNESSES_CONTEXT + "".join(f"{line}\n" for line in lines).encode()


def witnesses_endorsement(
    audit_key: SigningKey, vkey: str, witnesses: list[str], threshold: int
) -> bytes:
    """The audit key's signature that checkpoints of the log ``vkey`` count only with
    ``threshold`` cosignatures of ``witnesses``."""
    return audit_key.sign(_witnesses_message(vkey, witnesses, threshold))


def check_witnesses_endorsement(
    audit_key: VerifyKey, vkey: str, witnesses: list[str], threshold: int, signature: bytes
) -> None:
    """Raise :class:`AuthenticationError` unless the pinned audit key endorsed exactly these
    witnesses and threshold for the log ``vkey``."""
    try:
        audit_key.verify(signature, _witnesses_message(vkey, witnesses, threshold))
    except Error:
        raise AuthenticationError(
            "the CAS's log witnesses are not endorsed by its pinned audit key: attest the CAS again"
        ) from None
    if witnesses and not 1 <= threshold <= len(witnesses):
        raise AuthenticationError(f"the CAS requires {threshold} of {len(witnesses)} witnesses")


def log_origin(audit_key: VerifyKey) -> str:
    """The log's origin for the CAS whose audit key is ``audit_key``."""
    return ORIGIN_PREFIX + sha256(audit_key.raw())[:8].hex()


def vkey_endorsement(audit_key: SigningKey, vkey: str) -> bytes:
    """The audit key's signature that ``vkey`` is this CAS's log key."""
    return audit_key.sign(_ENDORSEMENT_CONTEXT + vkey.encode())


def check_vkey_endorsement(audit_key: VerifyKey, vkey: str, signature: bytes) -> Ed25519Verifier:
    """The log's verifier, if the pinned audit key endorsed ``vkey`` as the CAS's log key
    under the origin that key implies; :class:`AuthenticationError` otherwise."""
    # 1. The audit key (pinned after attestation) signed exactly this vkey.
    try:
        audit_key.verify(signature, _ENDORSEMENT_CONTEXT + vkey.encode())
    except Error:
        raise AuthenticationError(
            "the CAS's log key is not endorsed by its pinned audit key: attest the CAS again"
        ) from None
    # 2. A valid Ed25519 note key, named with this CAS's origin.
    try:
        verifier = parse_vkey(vkey)
    except UsageError as exc:
        raise AuthenticationError(f"the CAS's log key is not a vkey: {exc}") from None
    if type(verifier) is not Ed25519Verifier:
        raise AuthenticationError("the CAS's log key is not an Ed25519 note key")
    if verifier.name != log_origin(audit_key):
        raise AuthenticationError(
            f"the CAS's log key is named {verifier.name!r}, not {log_origin(audit_key)!r}"
        )
    return verifier

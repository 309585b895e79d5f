"""The CAS's TLS key rotation chain: each retired key endorses its successor.

``securetf cas rotate-key`` makes a new TLS key and has the current one sign a *link*::

    link    = {"prev": base64(SPKI DER of the retired key), "next": hex SHA-256 of the new
               key's SPKI DER, "at": unix seconds, "sig": base64(ECDSA-P256-SHA256 by the
               retired key over message)}
    message = canonical JSON ["securetf-cas-tls-rotation-v1", hex SHA-256(prev), next, at]

The CAS's certificate carries every link since its first key, as canonical JSON in a
non-critical extension (:data:`ROTATION_OID`), so the evidence that binds the certificate
binds the chain too, and a client that pinned any earlier certificate can walk from its
pinned key to the one presented (:func:`verify_chain`) without trusting anything new.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from securetf.crypto import Certificate, constant_time_equal, sha256
from securetf.crypto.x509ca import verify_ec_signature
from securetf.errors import AttestationError, Error
from securetf.policy import canonical_json

__all__ = ["ROTATION_OID", "RotationLink", "chain_of", "encode_chain", "verify_chain"]

#: A UUID-based OID (ITU-T X.667, arc 2.25): the extension holding the chain.
ROTATION_OID = "2.25.99494763604650271409741591947329859744"
_DOMAIN = "securetf-cas-tls-rotation-v1"


@dataclass(frozen=True)
class RotationLink:
    prev: bytes  # SPKI DER of the retired key
    next: str  # hex SHA-256 of the successor's SPKI DER
    at: int
    sig: bytes

    @staticmethod
    def message(prev: bytes, next_sha256: str, at: int) -> bytes:
        return canonical_json([_DOMAIN, sha256(prev).hex(), next_sha256, at])

    def to_json(self) -> dict[str, Any]:
        return {
            "prev": base64.b64encode(self.prev).decode(),
            "next": self.next,
            "at": self.at,
            "sig": base64.b64encode(self.sig).decode(),
        }

    @classmethod
    def from_json(cls, value: Any) -> RotationLink:
        try:
            return cls(
                base64.b64decode(value["prev"], validate=True),
                str(value["next"]),
                int(value["at"]),
                base64.b64decode(value["sig"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AttestationError("the CAS's key rotation chain is malformed") from exc


def encode_chain(links: list[RotationLink]) -> bytes:
    return canonical_json([link.to_json() for link in links])


def chain_of(cert: Certificate) -> list[RotationLink]:
    """The links a certificate carries (none for a CAS that never rotated)."""
    raw = cert.extension_value(ROTATION_OID)
    if raw is None:
        return []
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise AttestationError("the CAS's key rotation chain is not JSON") from None
    if not isinstance(value, list):
        raise AttestationError("the CAS's key rotation chain is not a list")
    return [RotationLink.from_json(item) for item in value]


def verify_chain(pinned_spki: bytes, presented: Certificate) -> list[RotationLink]:
    """The links that lead from the pinned key to ``presented``'s key, each signed by its
    predecessor; :class:`AttestationError` if there is no such path.

    1. Find the link whose ``prev`` is the pinned key (a rotation the client missed).
    2. Each link's signature verifies under its ``prev``; each ``next`` is the following
       link's ``prev``.
    3. The last ``next`` is the presented certificate's key.
    """
    links = chain_of(presented)
    start = next((i for i, link in enumerate(links) if link.prev == pinned_spki), None)
    if start is None:
        raise AttestationError(
            "the CAS presents a certificate whose key the pinned key never endorsed: it is "
            "not a rotation of the CAS you attested (a machine in the middle, or another "
            "CAS); attest it again only if you trust it (securetf cas attest)"
        )
    path = links[start:]
    for i, link in enumerate(path):
        try:
            verify_ec_signature(
                link.prev, link.sig, RotationLink.message(link.prev, link.next, link.at)
            )
        except Error:
            raise AttestationError(
                f"link {start + i} of the CAS's key rotation chain is not signed by the key "
                "it retires: refused"
            ) from None
        following = path[i + 1].prev if i + 1 < len(path) else presented.public_key_der()
        if not constant_time_equal(sha256(following).hex().encode(), link.next.encode()):
            raise AttestationError(
                f"link {start + i} of the CAS's key rotation chain endorses another key: refused"
            )
    return path

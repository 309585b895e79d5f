"""Owners' check of the audit chain as the CAS shows it to them (docs/cas.md, "Audit").

Entries of the owner's policy arrive whole; others' only as digest, chain and signature,
which is all a link needs. Steps, per entry in order:

1. ``seq`` continues the sequence from 1.
2. A whole entry's content hashes to its digest (an edited entry fails here).
3. ``chain = SHA-256(previous chain || digest)`` (a removed or reordered entry fails here).
4. The CAS audit key signed the chain (a re-computed chain fails here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securetf.cas.audit import AUDIT_SIGNING_CONTEXT, GENESIS_CHAIN, audit_digest
from securetf.crypto import VerifyKey, constant_time_equal, sha256
from securetf.errors import AuthenticationError, IntegrityError


def _hex(entry: Mapping[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(str(entry[field]))
    except (KeyError, ValueError):
        raise IntegrityError(f"audit entry {entry.get('seq')} has no valid {field}") from None


def verify_audit_view(
    entries: Sequence[Mapping[str, Any]], key: VerifyKey, *, policy: str
) -> bytes:
    """Verify the chain; return its head. Raises :class:`IntegrityError` naming the entry."""
    chain = GENESIS_CHAIN
    for index, entry in enumerate(entries, start=1):
        # 1. Sequence.
        if entry.get("seq") != index:
            raise IntegrityError(f"audit entry {index} is missing or out of order")
        digest = _hex(entry, "digest")
        # 2. Content of this owner's entries.
        if entry.get("policy") == policy:
            content = audit_digest(
                index, float(entry["time"]), str(entry["kind"]), policy, entry["detail"]
            )
            if not constant_time_equal(content, digest):
                raise IntegrityError(f"audit entry {index} was altered")
        # 3. Link.
        chain = sha256(chain, digest)
        if not constant_time_equal(chain, _hex(entry, "chain")):
            raise IntegrityError(f"audit entry {index} does not link to the one before it")
        # 4. Signature.
        try:
            key.verify(_hex(entry, "signature"), AUDIT_SIGNING_CONTEXT + chain)
        except AuthenticationError:
            raise IntegrityError(f"audit entry {index} is not signed by the CAS") from None
    return chain

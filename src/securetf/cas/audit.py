"""The CAS audit log as a hash chain: how a link is made, how a chain is verified, its wire form.

Each entry ``n`` (``seq`` from 1, no gaps) carries

1. ``digest = SHA-256(canonical_json({seq, time, kind, policy, detail}))``,
2. ``chain = SHA-256(chain of entry n-1 || digest)`` (32 zero bytes before entry 1),
3. ``signature`` = the CAS audit key's Ed25519 signature over ``"securetf-audit-v1\\0" || chain``.

An edited entry breaks its digest; a removed or reordered one breaks the ``seq`` sequence or
a link; a re-computed chain lacks the CAS's signature; a truncated tail is caught by
comparing the returned head with one pinned earlier (``expected_head``). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from securetf.cas._records import AuditEntry
from securetf.crypto import SigningKey, VerifyKey, sha256
from securetf.errors import AuthenticationError, IntegrityError, UsageError
from securetf.policy import canonical_json

__all__ = [
    "AUDIT_SIGNING_CONTEXT",
    "GENESIS_CHAIN",
    "audit_digest",
    "audit_entry_from_json",
    "audit_entry_to_json",
    "make_audit_entry",
    "normalize_detail",
    "verify_audit_chain",
    "verify_audit_links",
]

AUDIT_SIGNING_CONTEXT = b"securetf-audit-v1\x00"
GENESIS_CHAIN = bytes(32)


def normalize_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``detail`` as it reads back from JSON (tuples become lists), so digests are stable."""
    try:
        value = json.loads(canonical_json(dict(detail)))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"an audit detail must be plain JSON data: {exc}") from exc
    if not isinstance(value, dict):  # pragma: no cover - dict in, dict out
        raise UsageError("an audit detail must be a JSON object")
    return value


def audit_digest(
    seq: int, time: float, kind: str, policy: str | None, detail: Mapping[str, Any]
) -> bytes:
    """Step 1: the digest of an entry's content."""
    content = {"seq": seq, "time": time, "kind": kind, "policy": policy, "detail": detail}
    try:
        return sha256(canonical_json(content))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"an audit entry must be plain JSON data: {exc}") from exc


def _link(prev_chain: bytes, digest: bytes) -> bytes:
    """Step 2."""
    return sha256(prev_chain, digest)


def make_audit_entry(
    prev_chain: bytes,
    seq: int,
    time: float,
    kind: str,
    policy: str | None,
    detail: Mapping[str, Any],
    key: SigningKey,
) -> AuditEntry:
    """The entry that follows ``prev_chain``, signed with ``key``."""
    clean = normalize_detail(detail)
    digest = audit_digest(seq, float(time), kind, policy, clean)
    chain = _link(prev_chain, digest)
    signature = key.sign(AUDIT_SIGNING_CONTEXT + chain)  # step 3
    return AuditEntry(seq, float(time), kind, policy, clean, digest, chain, signature)


def _check_link(entry: AuditEntry, seq: int, prev_chain: bytes) -> None:
    """Steps 1 and 2 for one entry expected at ``seq`` after ``prev_chain``."""
    if entry.seq != seq:
        raise IntegrityError(
            f"audit log: entry {seq} has seq {entry.seq} (removed or reordered entries)"
        )
    digest = audit_digest(entry.seq, entry.time, entry.kind, entry.policy, entry.detail)
    if digest != entry.digest:
        raise IntegrityError(f"audit log: entry seq {entry.seq} was edited (digest mismatch)")
    if _link(prev_chain, digest) != entry.chain:
        raise IntegrityError(f"audit log: entry seq {entry.seq} does not link to seq {seq - 1}")


def verify_audit_links(
    entries: Sequence[AuditEntry], *, after: int = 0, prev_chain: bytes = GENESIS_CHAIN
) -> bytes:
    """Check steps 1 and 2 of the entries that follow seq ``after`` (whose chain is
    ``prev_chain``); return the last chain. Signatures are not checked: this is the CAS's
    own check of its database before it serves a page, where a row changed by hand fails
    its digest (every field, the policy label included) or its link."""
    prev = prev_chain
    for seq, entry in enumerate(entries, start=after + 1):
        _check_link(entry, seq, prev)
        prev = entry.chain
    return prev


def verify_audit_chain(
    entries: Sequence[AuditEntry], key: VerifyKey, *, expected_head: bytes | None = None
) -> bytes:
    """Check a whole log from ``seq`` 1; return its head (the last ``chain``).

    Raises :class:`IntegrityError` naming the first bad ``seq``. An empty log has the
    head :data:`GENESIS_CHAIN`. Pass ``expected_head`` (a head seen before, or the one the
    CAS reports) to catch entries removed from the end.
    """
    prev = GENESIS_CHAIN
    for position, entry in enumerate(entries, start=1):
        _check_link(entry, position, prev)
        try:
            key.verify(entry.signature, AUDIT_SIGNING_CONTEXT + entry.chain)  # step 3
        except AuthenticationError:
            raise IntegrityError(
                f"audit log: entry seq {entry.seq} is not signed by the CAS audit key"
            ) from None
        prev = entry.chain
    if expected_head is not None and expected_head != prev:
        raise IntegrityError(
            f"audit log: head after seq {len(entries)} differs from the expected head "
            "(entries removed from the end, or another log)"
        )
    return prev


def audit_entry_to_json(entry: AuditEntry) -> dict[str, Any]:
    """The wire form: the fields as JSON, bytes as lowercase hex."""
    return {
        "seq": entry.seq,
        "time": entry.time,
        "kind": entry.kind,
        "policy": entry.policy,
        "detail": entry.detail,
        "digest": entry.digest.hex(),
        "chain": entry.chain.hex(),
        "signature": entry.signature.hex(),
    }


def _field(data: Mapping[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, types) or isinstance(value, bool):
        raise IntegrityError(f"audit entry: field {name!r} is missing or has the wrong type")
    return value


def _hex(data: Mapping[str, Any], name: str, size: int | None) -> bytes:
    try:
        raw = bytes.fromhex(_field(data, name, str))
    except ValueError:
        raise IntegrityError(f"audit entry: field {name!r} is not hex") from None
    if size is not None and len(raw) != size:
        raise IntegrityError(f"audit entry: field {name!r} must be {size} bytes")
    return raw


def audit_entry_from_json(data: Mapping[str, Any]) -> AuditEntry:
    """Parse the wire form; a malformed entry is an :class:`IntegrityError`."""
    if not isinstance(data, Mapping):
        raise IntegrityError("audit entry: not a JSON object")
    policy = data.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise IntegrityError("audit entry: field 'policy' has the wrong type")
    return AuditEntry(
        seq=_field(data, "seq", int),
        time=float(_field(data, "time", (int, float))),
        kind=_field(data, "kind", str),
        policy=policy,
        detail=_field(data, "detail", dict),
        digest=_hex(data, "digest", 32),
        chain=_hex(data, "chain", 32),
        signature=_hex(data, "signature", 64),
    )

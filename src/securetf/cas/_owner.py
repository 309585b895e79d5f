"""What only a policy's owners may read: exported secrets and the audit trail."""

from __future__ import annotations

import logging
from typing import Any

from securetf.cas._policies import load
from securetf.cas._records import AuditEntry
from securetf.cas._secret_versions import PREVIOUS, open_previous, previous_name
from securetf.cas._store_api import Tx
from securetf.cas.audit import GENESIS_CHAIN, verify_audit_links
from securetf.errors import IntegrityError, NotFoundError, PolicyError, UsageError
from securetf.policy import Action, Approval, Policy, SignedRequest, VolumeKeySecret, check_read
from securetf.protocol import AuditHead, AuditPage

_log = logging.getLogger(__name__)


def authorize(
    tx: Tx,
    policy_name: str,
    signed: SignedRequest,
    *,
    action: Action,
    target: str = "",
    now: float,
) -> Approval:
    """Verify an owner's fresh request for ``action`` on ``target`` under the version in
    force; return the verified approval (owner and request)."""
    stored, policy = load(tx, policy_name)
    seen = tx.seen_request_ids([signed.unverified_request().request_id])
    approval = check_read(
        policy,
        stored.hash,
        signed,
        action=action,
        target=target,
        now=now,
        seen_request_ids=seen,
    )
    tx.record_request_ids([approval.request.request_id], now)
    return approval


def export_secret(tx: Tx, policy_name: str, secret: str, owner: str, *, now: float) -> bytes:
    """The value of a secret the policy exports to its owners, or (``<name>@previous``) the
    previous value of a replaced imported key while the policy keeps it readable."""
    _, policy = load(tx, policy_name)
    if secret.endswith(PREVIOUS):
        return _export_previous(tx, policy, secret.removesuffix(PREVIOUS), owner, now=now)
    spec = policy.secrets.get(secret)
    if spec is None:
        raise NotFoundError(f"policy {policy_name!r} defines no secret {secret!r}")
    if not isinstance(spec, VolumeKeySecret) or not spec.export_to_owners:
        raise PolicyError(
            f"secret {secret!r} is not exported to owners; the policy must say "
            "{kind: volume-key, ..., export_to_owners: true}"
        )
    value = tx.get_secret(policy_name, secret)
    if value is None:
        raise NotFoundError(f"secret {secret!r} has no value yet")
    tx.append_audit("secret.exported", policy_name, {"secret": secret, "owner": owner}, now)
    return value


def _export_previous(tx: Tx, policy: Policy, secret: str, owner: str, *, now: float) -> bytes:
    spec = policy.secrets.get(secret)
    if not isinstance(spec, VolumeKeySecret) or not spec.previous_readable_seconds:
        raise PolicyError(
            f"secret {secret!r} keeps no previous value: the policy must give it "
            "previous_readable_seconds"
        )
    stored = tx.get_secret(policy.name, previous_name(secret))
    if stored is None:
        raise NotFoundError(f"secret {secret!r} was never replaced: it has no previous value")
    value = open_previous(stored, secret, now=now)
    tx.append_audit(
        "secret.exported",
        policy.name,
        {"secret": secret, "version": "previous", "owner": owner},
        now,
    )
    return value


def audit_page(tx: Tx, policy_name: str, *, after: int, size: int) -> AuditPage:
    """At most ``size`` entries after seq ``after``, up to the head row read in this same
    transaction, as an owner of ``policy_name`` sees them. Every entry served, and the head,
    is checked against the database first: a row changed by hand is refused, loudly."""
    if after < 0:
        raise UsageError(f"'after' is the seq of an entry read before (0 or more), not {after}")
    try:
        head_seq, head_chain, head_signature = _checked_head(tx)
        start = min(after, head_seq)
        entries = _checked_entries(tx, start, min(size, head_seq - start))
    except IntegrityError as exc:
        _log.error("refusing to serve the audit log: %s", exc)
        raise IntegrityError(
            f"{exc}. The CAS's audit log was altered in its database, so the CAS refuses to "
            "serve it; tell its operators (its log names the entry), who must restore the "
            "database from a trusted backup"
        ) from None
    head = AuditHead(seq=head_seq, chain=head_chain.hex(), signature=head_signature.hex())
    return AuditPage(entries=[_view(e, policy_name) for e in entries], head=head)


def _checked_head(tx: Tx) -> tuple[int, bytes, bytes]:
    """The head row and its entry's signature; the last entry must be the one it names."""
    seq, chain = tx.audit_head()
    last = tx.audit_entries(max(seq - 1, 0), 2)  # the head's entry, and any beyond it
    if seq == 0 and not last:
        return seq, chain, b""
    if len(last) != 1 or last[0].seq != seq or last[0].chain != chain:
        raise IntegrityError(
            f"audit log: the head row (seq {seq}) does not match the last entry "
            "(entries removed, added or changed at the end)"
        )
    return seq, chain, last[0].signature


def _checked_entries(tx: Tx, start: int, count: int) -> list[AuditEntry]:
    """Entries ``start + 1`` to ``start + count``, each hashing to its digest and linking to
    the one before (entry ``start`` is read for its chain)."""
    rows = tx.audit_entries(max(start - 1, 0), count + (1 if start else 0))
    prev = GENESIS_CHAIN
    if start:
        before = rows.pop(0) if rows else None
        if before is None or before.seq != start:
            raise IntegrityError(f"audit log: entry seq {start} is missing")
        prev = before.chain
    verify_audit_links(rows, after=start, prev_chain=prev)
    if len(rows) != count:
        raise IntegrityError(f"audit log: entries after seq {start + len(rows)} are missing")
    return rows


def _view(e: AuditEntry, policy_name: str) -> dict[str, Any]:
    """Other policies' entries are reduced to what the chain needs to verify."""
    item: dict[str, Any] = {
        "seq": e.seq,
        "digest": e.digest.hex(),
        "chain": e.chain.hex(),
        "signature": e.signature.hex(),
    }
    if e.policy == policy_name:
        item.update(time=e.time, kind=e.kind, policy=e.policy, detail=e.detail)
    return item

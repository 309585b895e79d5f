"""What only a policy's owners may read: exported secrets and the audit trail."""

from __future__ import annotations

from typing import Any

from securetf.cas._policies import load
from securetf.cas._records import AuditEntry
from securetf.cas._store_api import Tx
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import Action, Approval, SignedRequest, VolumeKeySecret, check_read


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
    """The value of a secret the policy exports to its owners."""
    _, policy = load(tx, policy_name)
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


def audit_view(entries: list[AuditEntry], policy_name: str) -> list[dict[str, Any]]:
    """The chain as an owner of ``policy_name`` sees it: other policies' entries are
    reduced to their digest, which is all the chain needs to verify."""
    view: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {
            "seq": e.seq,
            "digest": e.digest.hex(),
            "chain": e.chain.hex(),
            "signature": e.signature.hex(),
        }
        if e.policy == policy_name:
            item.update(time=e.time, kind=e.kind, policy=e.policy, detail=e.detail)
        view.append(item)
    return view

"""Policies, their history, the pending update of each, and seen request ids."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select

from securetf.cas._records import PendingUpdate, PolicyVersion
from securetf.cas.store._schema import pending_secrets, pending_updates, policies, request_ids
from securetf.cas.store._sealing import KIND_PENDING_SECRET
from securetf.cas.store._state import StateTamperedError
from securetf.cas.store._tx_base import TxBase, dump_blobs, load_blobs
from securetf.errors import PolicyError

__all__ = ["PolicyOps"]

_ID_BATCH = 500  # ids per IN (...) clause, well under SQLite's parameter limit


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(
        name=row.name,
        version=row.version,
        hash=row.hash,
        yaml=bytes(row.yaml),
        approvals=load_blobs(row.approvals),
        created_at=row.created_at,
    )


def _columns(v: PolicyVersion | PendingUpdate) -> dict[str, Any]:
    """The columns a policy version and a pending update share."""
    return {
        "name": v.name,
        "version": v.version,
        "hash": v.hash,
        "yaml": v.yaml,
        "approvals": dump_blobs(v.approvals),
        "created_at": v.created_at,
    }


# Built once (read on every provisioning): see TxBase._upsert.
_CURRENT_POLICY = (
    select(policies)
    .where(policies.c.name == bindparam("policy_name"))
    .order_by(policies.c.version.desc())
    .limit(1)
)


class PolicyOps(TxBase):
    # -- policies --------------------------------------------------------------------
    def current_policy(self, name: str) -> PolicyVersion | None:
        row = self._conn.execute(_CURRENT_POLICY, {"policy_name": name}).first()
        listed = self._listed(name, policies)
        if row is None:
            if listed:
                raise StateTamperedError(name, "its policy versions were deleted")
            return None
        # The newest row must be the newest version the head lists: a deleted newest
        # version would otherwise put an older one back in force.
        if max((int(v) for v in listed), default=0) != row.version:
            raise StateTamperedError(name, f"version {row.version} is not the newest listed")
        self._check_row(name, policies, str(row.version), row)
        return _version(row)

    def version_in_force(self, name: str) -> int | None:
        return max((int(v) for v in self._listed(name, policies)), default=None)

    def policy_history(self, name: str) -> list[PolicyVersion]:
        rows = self._conn.execute(
            select(policies).where(policies.c.name == name).order_by(policies.c.version)
        ).all()
        if {str(row.version) for row in rows} != self._listed(name, policies):
            raise StateTamperedError(name, "its policy versions differ from the listed ones")
        for row in rows:
            self._check_row(name, policies, str(row.version), row)
        return [_version(row) for row in rows]

    def policy_names(self) -> list[str]:
        return [name for name in self._known_policies() if self._listed(name, policies)]

    def insert_policy(self, version: PolicyVersion) -> None:
        exists = self._conn.execute(
            select(func.count())
            .select_from(policies)
            .where(policies.c.name == version.name, policies.c.version == version.version)
        ).scalar_one()
        if exists:
            raise PolicyError(
                f"policy {version.name!r} version {version.version} exists already; "
                "history is immutable"
            )
        self._check_absent(version.name, policies, str(version.version))
        values = _columns(version)
        self._conn.execute(insert(policies).values(**values))
        self._record(version.name, policies, str(version.version), values)

    # -- pending updates -------------------------------------------------------------
    def pending_update(self, name: str) -> PendingUpdate | None:
        row = self._conn.execute(
            select(pending_updates).where(pending_updates.c.name == name)
        ).first()
        stored = self._conn.execute(
            select(pending_secrets)
            .where(pending_secrets.c.policy == name)
            .order_by(pending_secrets.c.position)
        ).all()
        if {str(s.position) for s in stored} != self._listed(name, pending_secrets):
            raise StateTamperedError(name, "the pending update's secrets differ from the listed")
        if row is None:
            self._check_absent(name, pending_updates, "")
            if stored:
                raise StateTamperedError(name, "pending secrets without a pending update")
            return None
        self._check_row(name, pending_updates, "", row)
        for s in stored:
            self._check_row(name, pending_secrets, str(s.position), s)
        opened = tuple(
            (s.name, self._sealer.open(KIND_PENDING_SECRET, name, s.name, bytes(s.sealed)))
            for s in stored
        )
        return PendingUpdate(
            name=row.name,
            version=row.version,
            hash=row.hash,
            yaml=bytes(row.yaml),
            approvals=load_blobs(row.approvals),
            secrets=opened,
            created_at=row.created_at,
        )

    def put_pending(self, pending: PendingUpdate) -> None:
        self.delete_pending(pending.name)
        values = _columns(pending)
        self._conn.execute(insert(pending_updates).values(**values))
        self._record(pending.name, pending_updates, "", values)
        for position, (secret, value) in enumerate(pending.secrets):
            sealed = self._sealer.seal(KIND_PENDING_SECRET, pending.name, secret, value)
            row = {"policy": pending.name, "position": position, "name": secret, "sealed": sealed}
            self._conn.execute(insert(pending_secrets).values(**row))
            self._record(pending.name, pending_secrets, str(position), row)

    def delete_pending(self, name: str) -> None:
        # Explicit, not only ON DELETE CASCADE: foreign keys are per-connection in SQLite.
        self._conn.execute(delete(pending_secrets).where(pending_secrets.c.policy == name))
        self._conn.execute(delete(pending_updates).where(pending_updates.c.name == name))
        for position in self._listed(name, pending_secrets):
            self._forget(name, pending_secrets, position)
        if self._listed(name, pending_updates):
            self._forget(name, pending_updates, "")

    # -- replay protection -----------------------------------------------------------
    def seen_request_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        seen: set[str] = set()
        for start in range(0, len(wanted), _ID_BATCH):
            batch = wanted[start : start + _ID_BATCH]
            seen.update(
                self._conn.execute(select(request_ids.c.id).where(request_ids.c.id.in_(batch)))
                .scalars()
                .all()
            )
        return seen

    def record_request_ids(self, ids: Iterable[str], now: float) -> None:
        for request_id in dict.fromkeys(ids):
            self._insert_absent(request_ids, {"id": request_id, "seen_at": now})

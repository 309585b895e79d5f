"""Appending to and reading the hash-chained audit log."""

from __future__ import annotations

import hmac
import json
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from securetf.cas._records import AuditEntry
from securetf.cas.audit import make_audit_entry
from securetf.cas.store._errors import StoreError
from securetf.cas.store._schema import audit_head, audit_log, refusal_windows
from securetf.cas.store._tx_base import TxBase
from securetf.errors import IntegrityError
from securetf.policy import canonical_json

__all__ = ["AuditOps"]


def _entry(row: Any) -> AuditEntry:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        raise IntegrityError(f"audit log: entry seq {row.seq} has a damaged detail") from None
    return AuditEntry(
        seq=row.seq,
        time=row.time,
        kind=row.kind,
        policy=row.policy,
        detail=detail,
        digest=bytes(row.digest),
        chain=bytes(row.chain),
        signature=bytes(row.signature),
    )


# Built once (every decision appends an entry): see TxBase._upsert.
_LOCK_HEAD = (
    select(audit_head.c.seq, audit_head.c.chain).where(audit_head.c.id == 1).with_for_update()
)
_INSERT_ENTRY = insert(audit_log)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), chain=bindparam("new_chain"))
)


class AuditOps(TxBase):
    def append_audit(
        self, kind: str, policy: str | None, detail: dict[str, Any], now: float
    ) -> AuditEntry:
        # Lock the head row first: concurrent appends queue here (PostgreSQL: the loser
        # fails with a serialization error and is re-run), so the chain cannot fork.
        head = self._conn.execute(_LOCK_HEAD).first()
        if head is None:
            raise StoreError("the audit head row is missing: the CAS database is damaged")
        entry = make_audit_entry(
            bytes(head.chain), head.seq + 1, now, kind, policy, detail, self._audit_key
        )
        row = {
            "seq": entry.seq,
            "time": entry.time,
            "kind": entry.kind,
            "policy": entry.policy,
            "detail": canonical_json(entry.detail).decode("utf-8"),
            "digest": entry.digest,
            "chain": entry.chain,
            "signature": entry.signature,
        }
        self._conn.execute(_INSERT_ENTRY, row)
        self._conn.execute(_MOVE_HEAD, {"new_seq": entry.seq, "new_chain": entry.chain})
        return entry

    def audit_head(self) -> tuple[int, bytes]:
        head = self._conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        if head is None:
            raise StoreError("the audit head row is missing: the CAS database is damaged")
        return int(head.seq), bytes(head.chain)

    def audit_entries(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditEntry]:
        rows = self._conn.execute(
            select(audit_log)
            .where(audit_log.c.seq > after_seq)
            .order_by(audit_log.c.seq)
            .limit(max(0, limit))
        )
        return [_entry(row) for row in rows]

    # -- refusals' audit limit, shared by replicas ----------------------------------------
    def admit_refusal(self, source: str, window: int, limit: int) -> bool:
        """Count one audited refusal of ``source`` in ``window``; False (nothing written) if
        ``limit`` were audited in it already. A row whose MAC fails counts as none."""
        key = {"source": source, "window": window}
        row = self._conn.execute(
            select(refusal_windows.c.written, refusal_windows.c.mac).where(
                refusal_windows.c.source == source, refusal_windows.c.window == window
            )
        ).first()
        written = 0
        if row is not None and hmac.compare_digest(
            bytes(row.mac), self._state_key.mac("refusal-window", [source, window, row.written])
        ):
            written = int(row.written)
        if written >= limit:
            return False
        written += 1
        mac = self._state_key.mac("refusal-window", [source, window, written])
        self._upsert(refusal_windows, {**key, "written": written, "mac": mac}, list(key))
        # Windows before the previous one decide nothing any more.
        self._conn.execute(delete(refusal_windows).where(refusal_windows.c.window < window - 1))
        return True

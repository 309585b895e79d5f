"""What every part of a transaction shares: its connection, the sealer, the authenticated
state (:mod:`._state`), dialect helpers."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Double, LargeBinary, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from securetf.cas.store._errors import TransactionConflictError
from securetf.cas.store._schema import policy_state, state_head
from securetf.cas.store._sealing import RecordSealer
from securetf.cas.store._state import PolicyHead, StateHead, StateKey, StateTamperedError
from securetf.crypto import SigningKey
from securetf.errors import IntegrityError

__all__ = ["TxBase", "create_state_head", "dump_blobs", "load_blobs", "read_state_head"]


def read_state_head(conn: Connection, key: StateKey) -> StateHead:
    """The state head, verified; :class:`StateTamperedError` if missing or not authentic."""
    row = conn.execute(select(state_head).where(state_head.c.id == 1)).first()
    if row is None:
        raise StateTamperedError(None, "the state head row is missing")
    head = StateHead.parse(row.epoch, row.policies)
    if not hmac.compare_digest(key.mac("state-head", head.content()), bytes(row.mac)):
        raise StateTamperedError(
            None, "the state head's MAC does not verify (changed, or another master key)"
        )
    return head


def create_state_head(conn: Connection, key: StateKey) -> None:
    """The first, empty state head of a new database."""
    head = StateHead()
    conn.execute(
        insert(state_head).values(
            id=1, epoch=head.epoch, policies=head.text(), mac=key.mac("state-head", head.content())
        )
    )


def _normalized(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every column of ``table`` as stored and read back (floats as floats, blobs as bytes)."""
    out: dict[str, Any] = {}
    for column in table.columns:
        value = values[column.name]
        if value is not None and isinstance(column.type, Double):
            value = float(value)
        elif value is not None and isinstance(column.type, LargeBinary):
            value = bytes(value)
        out[column.name] = value
    return out


class TxBase:
    """One open transaction on one connection. Valid only inside ``Store.transaction()``."""

    def __init__(
        self, conn: Connection, sealer: RecordSealer, audit_key: SigningKey, state_key: StateKey
    ) -> None:
        self._conn = conn
        self._sealer = sealer
        self._audit_key = audit_key
        self._state_key = state_key
        self._state: StateHead | None = None
        self._heads: dict[str, PolicyHead] = {}
        self._dirty: set[str] = set()

    # -- authenticated state (see _state.py) -------------------------------------------
    def _state_head(self) -> StateHead:
        if self._state is None:
            self._state = read_state_head(self._conn, self._state_key)
        return self._state

    def _policy_head(self, name: str) -> PolicyHead:
        head = self._heads.get(name)
        if head is not None:
            return head
        listed = self._state_head().policies.get(name)
        if listed is None:
            head = PolicyHead(name)  # no state yet: every row of it must be absent
        else:
            row = self._conn.execute(
                select(policy_state).where(policy_state.c.name == name)
            ).first()
            if row is None:
                raise StateTamperedError(name, "the policy's head row is missing")
            head = PolicyHead.parse(name, row.epoch, row.rows)
            mac = self._state_key.mac("policy-head", head.content()).hex()
            if not hmac.compare_digest(mac, listed):
                raise StateTamperedError(name, "the policy's head is not the one the state lists")
        self._heads[name] = head
        return head

    def _known_policies(self) -> list[str]:
        return sorted(self._state_head().policies)

    def _check_row(self, policy: str, table: Table, key: str, row: Any) -> None:
        """Raise unless ``row`` is exactly the row of ``table`` at ``key`` the head lists."""
        listed = self._policy_head(policy).rows.get(f"{table.name}/{key}")
        if listed is None:
            raise StateTamperedError(policy, f"{table.name} row {key!r} is not in the head")
        mac = self._state_key.row_mac(table.name, _normalized(table, row._mapping))
        if not hmac.compare_digest(mac, listed):
            raise StateTamperedError(policy, f"{table.name} row {key!r} was changed or moved")

    def _check_absent(self, policy: str, table: Table, key: str) -> None:
        """Raise if the head lists a row the database no longer has."""
        if f"{table.name}/{key}" in self._policy_head(policy).rows:
            raise StateTamperedError(policy, f"{table.name} row {key!r} was deleted")

    def _listed(self, policy: str, table: Table) -> set[str]:
        """The keys of ``table`` the head of ``policy`` lists."""
        prefix = table.name + "/"
        return {k[len(prefix) :] for k in self._policy_head(policy).rows if k.startswith(prefix)}

    def _record(self, policy: str, table: Table, key: str, values: Mapping[str, Any]) -> None:
        """List a row just written (its MAC) in its policy's head."""
        mac = self._state_key.row_mac(table.name, _normalized(table, values))
        self._policy_head(policy).rows[f"{table.name}/{key}"] = mac
        self._dirty.add(policy)

    def _forget(self, policy: str, table: Table, key: str) -> None:
        self._policy_head(policy).rows.pop(f"{table.name}/{key}", None)
        self._dirty.add(policy)

    def flush_state(self) -> None:
        """Write the heads this transaction changed (called just before commit)."""
        if not self._dirty:
            return
        state = self._state_head()
        for name in sorted(self._dirty):
            head = self._heads[name]
            head.epoch += 1
            self._upsert(
                policy_state,
                {"name": name, "epoch": head.epoch, "rows": head.text()},
                ("name",),
            )
            state.policies[name] = self._state_key.mac("policy-head", head.content()).hex()
        previous = state.epoch
        state.epoch += 1
        moved = self._conn.execute(
            update(state_head)
            .where(state_head.c.id == 1, state_head.c.epoch == previous)
            .values(
                epoch=state.epoch,
                policies=state.text(),
                mac=self._state_key.mac("state-head", state.content()),
            )
        ).rowcount
        if moved != 1:
            raise TransactionConflictError("the CAS state moved concurrently; retry")
        self._dirty.clear()

    def _upsert(self, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
        """INSERT, or UPDATE the row with the same ``keys`` (one statement, no race)."""
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values)
        update = {k: v for k, v in values.items() if k not in keys}
        self._conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))

    def _insert_absent(self, table: Table, values: dict[str, Any]) -> bool:
        """INSERT unless the primary key exists; True if this call inserted."""
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values).on_conflict_do_nothing()
        # RETURNING, not rowcount: drivers need not report a rowcount for INSERT.
        first_key = next(iter(table.primary_key.columns))
        return self._conn.execute(stmt.returning(first_key)).first() is not None


def dump_blobs(blobs: Sequence[bytes]) -> str:
    return json.dumps([b.hex() for b in blobs])


def load_blobs(text: str) -> tuple[bytes, ...]:
    try:
        items = json.loads(text)
        return tuple(bytes.fromhex(item) for item in items)
    except (ValueError, TypeError):
        raise IntegrityError("a stored approval list is damaged") from None

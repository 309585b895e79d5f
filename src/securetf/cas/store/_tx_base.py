"""What every part of a transaction shares: its connection, the sealer, the authenticated
state (:mod:`._state`), dialect helpers."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Double,
    Executable,
    LargeBinary,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from securetf.cas.store._errors import TransactionConflictError
from securetf.cas.store._schema import policy_state, state_head
from securetf.cas.store._sealing import RecordSealer
from securetf.cas.store._state import (
    PolicyHead,
    StateHead,
    StateKey,
    StateTamperedError,
    VerifiedCache,
)
from securetf.crypto import SigningKey
from securetf.errors import IntegrityError
from securetf.log import Edges, FullTiles
from securetf.log._edge import Edge

__all__ = ["TxBase", "create_state_head", "dump_blobs", "load_blobs", "read_state_head"]

# Statements every transaction runs, built once: building SQLAlchemy statements costs more
# than running them on SQLite, and every provisioning runs these.
_READ_STATE = select(state_head).where(state_head.c.id == 1)
_READ_HEAD = select(policy_state).where(policy_state.c.name == bindparam("head_name"))
_WRITE_HEAD = (
    update(policy_state)
    .where(policy_state.c.name == bindparam("head_name"))
    .values(epoch=bindparam("head_epoch"), rows=bindparam("head_rows"))
)
_MOVE_STATE = (
    update(state_head)
    .where(state_head.c.id == 1, state_head.c.epoch == bindparam("previous"))
    .values(
        epoch=bindparam("state_epoch"),
        policies=bindparam("state_policies"),
        mac=bindparam("state_mac"),
    )
)
_UPSERT: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}
_INSERT_ABSENT: dict[tuple[str, str], Executable] = {}


def read_state_head(
    conn: Connection, key: StateKey, cache: VerifiedCache | None = None
) -> StateHead:
    """The state head, verified; :class:`StateTamperedError` if missing or not authentic."""
    row = conn.execute(_READ_STATE).first()
    if row is None:
        raise StateTamperedError(None, "the state head row is missing")
    mac = bytes(row.mac)
    seen = cache.get("state:" + mac.hex()) if cache else None
    if seen is not None and seen == (row.epoch, row.policies):
        return StateHead.parse(row.epoch, row.policies)
    head = StateHead.parse(row.epoch, row.policies)
    if not hmac.compare_digest(key.mac("state-head", head.content()), mac):
        raise StateTamperedError(
            None, "the state head's MAC does not verify (changed, or another master key)"
        )
    if cache:
        cache.put("state:" + mac.hex(), (row.epoch, row.policies))
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
        self,
        conn: Connection,
        sealer: RecordSealer,
        audit_key: SigningKey,
        state_key: StateKey,
        verified: VerifiedCache,
        *,
        log_edges: tuple[FullTiles, Edges] | None = None,
    ) -> None:
        self._conn = conn
        self._log_edges = log_edges
        #: The log's edge after each append of this transaction, with the entry's index.
        self.log_appended: list[tuple[Edge, int]] = []
        self._sealer = sealer
        self._audit_key = audit_key
        self._state_key = state_key
        self._verified = verified
        self._state: StateHead | None = None
        self._heads: dict[str, PolicyHead] = {}
        self._dirty: set[str] = set()
        self._drawn: set[int] = set()  # serials next_serial recorded in this transaction

    # -- authenticated state (see _state.py) -------------------------------------------
    def _state_head(self) -> StateHead:
        if self._state is None:
            self._state = read_state_head(self._conn, self._state_key, self._verified)
        return self._state

    def _policy_head(self, name: str) -> PolicyHead:
        head = self._heads.get(name)
        if head is not None:
            return head
        listed = self._state_head().policies.get(name)
        seen = self._verified.get("head:" + listed) if listed else None
        if listed is None:
            head = PolicyHead(name)  # no state yet: every row of it must be absent
        elif seen is not None:
            head = PolicyHead(name, seen.epoch, dict(seen.rows))  # the tx may change its copy
        else:
            row = self._conn.execute(_READ_HEAD, {"head_name": name}).first()
            if row is None:
                raise StateTamperedError(name, "the policy's head row is missing")
            head = PolicyHead.parse(name, row.epoch, row.rows)
            mac = self._state_key.mac("policy-head", head.content()).hex()
            if not hmac.compare_digest(mac, listed):
                raise StateTamperedError(name, "the policy's head is not the one the state lists")
            self._verified.put("head:" + listed, PolicyHead(name, head.epoch, dict(head.rows)))
        self._heads[name] = head
        return head

    def _known_policies(self) -> list[str]:
        return sorted(self._state_head().policies)

    def _check_row(self, policy: str, table: Table, key: str, row: Any) -> None:
        """Raise unless ``row`` is exactly the row of ``table`` at ``key`` the head lists."""
        listed = self._policy_head(policy).rows.get(f"{table.name}/{key}")
        if listed is None:
            raise StateTamperedError(policy, f"{table.name} row {key!r} is not in the head")
        values = _normalized(table, row._mapping)
        if self._verified.get("row:" + listed) == values:
            return  # exactly the values this MAC was computed over before
        mac = self._state_key.row_mac(table.name, values)
        if not hmac.compare_digest(mac, listed):
            raise StateTamperedError(policy, f"{table.name} row {key!r} was changed or moved")
        self._verified.put("row:" + listed, values)

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
        normalized = _normalized(table, values)
        mac = self._state_key.row_mac(table.name, normalized)
        self._policy_head(policy).rows[f"{table.name}/{key}"] = mac
        self._verified.put("row:" + mac, normalized)
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
            values = {"head_name": name, "head_epoch": head.epoch, "head_rows": head.text()}
            if self._conn.execute(_WRITE_HEAD, values).rowcount != 1:
                self._conn.execute(
                    insert(policy_state).values(name=name, epoch=head.epoch, rows=head.text())
                )
            mac = self._state_key.mac("policy-head", head.content()).hex()
            state.policies[name] = mac
            self._verified.put("head:" + mac, PolicyHead(name, head.epoch, dict(head.rows)))
        previous = state.epoch
        state.epoch += 1
        moved = self._conn.execute(
            _MOVE_STATE,
            {
                "previous": previous,
                "state_epoch": state.epoch,
                "state_policies": state.text(),
                "state_mac": self._state_key.mac("state-head", state.content()),
            },
        ).rowcount
        if moved != 1:
            raise TransactionConflictError("the CAS state moved concurrently; retry")
        self._dirty.clear()

    def _upsert(self, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
        """INSERT, or UPDATE the row with the same ``keys`` (one statement, no race)."""
        name = self._conn.dialect.name
        cache_key = (name, table.name, tuple(keys), tuple(values))
        stmt = _UPSERT.get(cache_key)
        if stmt is None:
            # Built once per shape, the values bound at execution: a statement object
            # keeps its compiled form's cache key, a new one is built and hashed each time.
            dialect = postgresql if name == "postgresql" else sqlite
            insert = dialect.insert(table)
            update = {k: insert.excluded[k] for k in values if k not in keys}
            stmt = insert.on_conflict_do_update(index_elements=list(keys), set_=update)
            _UPSERT[cache_key] = stmt
        self._conn.execute(stmt, values)

    def _insert_absent(self, table: Table, values: dict[str, Any]) -> bool:
        """INSERT unless the primary key exists; True if this call inserted."""
        name = self._conn.dialect.name
        stmt = _INSERT_ABSENT.get((name, table.name))
        if stmt is None:
            dialect = postgresql if name == "postgresql" else sqlite
            # RETURNING, not rowcount: drivers need not report a rowcount for INSERT.
            first_key = next(iter(table.primary_key.columns))
            stmt = dialect.insert(table).on_conflict_do_nothing().returning(first_key)
            _INSERT_ABSENT[(name, table.name)] = stmt
        return self._conn.execute(stmt, values).first() is not None


def dump_blobs(blobs: Sequence[bytes]) -> str:
    return json.dumps([b.hex() for b in blobs])


def load_blobs(text: str) -> tuple[bytes, ...]:
    try:
        items = json.loads(text)
        return tuple(bytes.fromhex(item) for item in items)
    except (ValueError, TypeError):
        raise IntegrityError("a stored approval list is damaged") from None

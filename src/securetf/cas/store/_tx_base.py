"""What every part of a transaction shares: its connection, the sealer, dialect helpers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from securetf.cas.store._sealing import RecordSealer
from securetf.crypto import SigningKey
from securetf.errors import IntegrityError

__all__ = ["TxBase", "dump_blobs", "load_blobs"]


class TxBase:
    """One open transaction on one connection. Valid only inside ``Store.transaction()``."""

    def __init__(self, conn: Connection, sealer: RecordSealer, audit_key: SigningKey) -> None:
        self._conn = conn
        self._sealer = sealer
        self._audit_key = audit_key

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

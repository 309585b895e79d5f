"""The log's store in SQL tables (SQLAlchemy Core): SQLite, and PostgreSQL by URL.

Two append-only tables: ``tlog_entries`` (index -> entry) and ``tlog_hashes``
((tile level, index) -> hash, see :mod:`._store`). Their primary keys make a second
writer that appends at the same size fail instead of interleaving, on any isolation
level, so several CAS processes may share one database.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    LargeBinary,
    MetaData,
    Select,
    SmallInteger,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy import exc as sa_exc

from securetf.log._errors import AppendConflictError, LogStoreError
from securetf.log._store import StoredHash

__all__ = ["SqlLogStore", "log_metadata"]

#: The log's tables; a service that keeps its own schema may create them with it.
log_metadata = MetaData()

_entries = Table(
    "tlog_entries",
    log_metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

_hashes = Table(
    "tlog_hashes",
    log_metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)


class SqlLogStore:
    """A :class:`LogStore` in the database behind ``engine``; creates its tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            log_metadata.create_all(engine)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "creating the log tables") from exc

    def size(self) -> int:
        try:
            with self._engine.connect() as conn:
                return _size(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "reading the log size") from exc

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        query = (
            select(_hashes.c.hash)
            .where(_hashes.c.level == level, _hashes.c.idx >= start, _hashes.c.idx < end)
            .order_by(_hashes.c.idx)
        )
        return self._read(query, end - start, f"hashes {start}..{end - 1} at level {level}")

    def read_entries(self, start: int, end: int) -> list[bytes]:
        query = (
            select(_entries.c.data)
            .where(_entries.c.idx >= start, _entries.c.idx < end)
            .order_by(_entries.c.idx)
        )
        return self._read(query, end - start, f"entries {start}..{end - 1}")

    def append(self, old_size: int, entries: Sequence[bytes], hashes: Sequence[StoredHash]) -> None:
        try:
            with self._engine.begin() as conn:
                current = _size(conn)
                if current != old_size:
                    raise AppendConflictError(
                        f"the log has {current} entries, not {old_size}: another writer "
                        "appended first; retry"
                    )
                rows = [{"idx": old_size + i, "data": e} for i, e in enumerate(entries)]
                if rows:
                    conn.execute(insert(_entries), rows)
                if hashes:
                    conn.execute(
                        insert(_hashes),
                        [{"level": lv, "idx": i, "hash": h} for lv, i, h in hashes],
                    )
        except sa_exc.IntegrityError as exc:
            raise AppendConflictError(
                f"rows for entry {old_size} exist already: another writer appended first "
                "(retry), or the database was edited"
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "appending to the log") from exc

    def _read(self, query: Select[bytes], count: int, what: str) -> list[bytes]:
        if count < 0:
            raise LogStoreError(f"cannot read {what}")
        try:
            with self._engine.connect() as conn:
                rows = [bytes(value) for value in conn.execute(query).scalars()]
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, f"reading {what}") from exc
        if len(rows) != count:
            raise LogStoreError(f"the log database lacks {what}: it was damaged or edited")
        return rows


def _size(conn: Connection) -> int:
    last = conn.execute(select(func.max(_entries.c.idx))).scalar()
    return 0 if last is None else int(last) + 1


def _error(exc: sa_exc.SQLAlchemyError, what: str) -> LogStoreError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return LogStoreError(f"the log database failed while {what}: {reason}")

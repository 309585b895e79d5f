"""The log's store in SQL tables (SQLAlchemy Core): SQLite, and PostgreSQL by URL.

Two append-only tables: ``tlog_entries`` (index -> entry) and ``tlog_hashes``
((tile level, index) -> hash, see :mod:`._store`). Their primary keys make a second
writer that appends at the same size fail instead of interleaving, on any isolation
level, so several CAS processes may share one database. A third, ``tlog_roots`` (size ->
root), holds the root of each tree a writer that keeps the tree's edge in memory made
(:mod:`._edge`): what a kept edge is checked against before it is used.

:class:`ConnectionLogStore` is the same store inside a transaction its caller owns: a
service appends its log entry in the transaction of the decision the entry records, so
the two are committed together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy import exc as sa_exc

from securetf.log import _rawsql
from securetf.log._errors import AppendConflictError, LogStoreError
from securetf.log._store import StoredHash

__all__ = ["ConnectionLogStore", "SqlLogStore", "log_metadata"]

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

_roots = Table(
    "tlog_roots",
    log_metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
)


class SqlLogStore:
    """A :class:`LogStore` in the database behind ``engine``; creates its tables."""

    def __init__(self, engine: Engine, *, read_options: Mapping[str, Any] | None = None) -> None:
        """``read_options``: execution options of the connections that only read (a service
        whose engine takes a write lock at BEGIN unless told otherwise names them here)."""
        self._engine = engine
        self._read_options = dict(read_options or {})
        try:
            log_metadata.create_all(engine)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "creating the log tables") from exc

    def size(self) -> int:
        try:
            with self._reader() as conn:
                return _size(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "reading the log size") from exc

    def tip(self) -> Tip:
        try:
            with self._reader() as conn:
                return _tip(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "reading the log size") from exc

    @contextlib.contextmanager
    def reading(self) -> Iterator[ConnectionLogStore]:
        """The store for several reads on one connection (one read transaction: on SQLite
        a snapshot)."""
        try:
            with self._reader() as conn:
                yield ConnectionLogStore(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "reading the log") from exc

    def _reader(self) -> Connection:
        conn = self._engine.connect()
        return conn.execution_options(**self._read_options) if self._read_options else conn

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        query = _hashes_query(level, start, end)
        return self._read(query, end - start, f"hashes {start}..{end - 1} at level {level}")

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return self._read(_entries_query(start, end), end - start, f"entries {start}..{end - 1}")

    def append(
        self,
        old_size: int,
        entries: Sequence[bytes],
        hashes: Sequence[StoredHash],
        root: bytes | None = None,
    ) -> None:
        try:
            with self._engine.begin() as conn:
                _append(conn, old_size, entries, hashes, root)
        except sa_exc.IntegrityError as exc:
            raise _conflict(old_size) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, "appending to the log") from exc

    def _read(self, query: Query, count: int, what: str) -> list[bytes]:
        if count < 0:
            raise LogStoreError(f"cannot read {what}")
        try:
            with self._reader() as conn:
                return _read(conn, query, count, what)
        except sa_exc.SQLAlchemyError as exc:
            raise _error(exc, f"reading {what}") from exc


class ConnectionLogStore:
    """A :class:`LogStore` over an open ``conn`` whose transaction the caller owns.

    Nothing here commits or rolls back, and database errors reach the caller as
    SQLAlchemy raised them (a serialization failure must stay one, so that the owner of
    the transaction re-runs it). The tables must exist (``log_metadata``). An append that
    finds the log at another size raises :class:`AppendConflictError`.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # (the transaction and savepoint, the log's size this store read or made in them):
        # an append in the same ones need not read the size again, as the transaction sees
        # no other writer's rows appear (SQLite: the write lock or a snapshot; PostgreSQL:
        # REPEATABLE READ and SERIALIZABLE snapshots); on READ COMMITTED an append that
        # another writer's rows overtook still fails on the primary keys.
        self._known: tuple[tuple[object, object], int] | None = None

    def size(self) -> int:
        return self._remember(_size(self._conn))

    def tip(self) -> Tip:
        tip = _tip(self._conn)
        self._remember(tip[0])
        return tip

    def _remember(self, size: int) -> int:
        self._known = (self._scope(), size)
        return size

    def _scope(self) -> tuple[object, object]:
        return self._conn.get_transaction(), self._conn.get_nested_transaction()

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        query = _hashes_query(level, start, end)
        return _read(self._conn, query, end - start, f"hashes {start}..{end - 1} at level {level}")

    def read_entries(self, start: int, end: int) -> list[bytes]:
        what = f"entries {start}..{end - 1}"
        return _read(self._conn, _entries_query(start, end), end - start, what)

    def append(
        self,
        old_size: int,
        entries: Sequence[bytes],
        hashes: Sequence[StoredHash],
        root: bytes | None = None,
    ) -> None:
        known, scope = self._known, self._scope()
        same = known is not None and all(a is b for a, b in zip(known[0], scope, strict=True))
        read = known[1] if known is not None and same else None
        _append(self._conn, old_size, entries, hashes, root, size=read)
        self._remember(old_size + len(entries))


# Built once: a statement object caches its compiled form's key, so a read costs the
# execution, not the building and hashing of a new statement (the log is read on every
# provisioning's answer).
_HASHES = (
    select(_hashes.c.hash)
    .where(
        _hashes.c.level == bindparam("level"),
        _hashes.c.idx >= bindparam("start"),
        _hashes.c.idx < bindparam("end"),
    )
    .order_by(_hashes.c.idx)
)
_ENTRIES = (
    select(_entries.c.data)
    .where(_entries.c.idx >= bindparam("start"), _entries.c.idx < bindparam("end"))
    .order_by(_entries.c.idx)
)
_SIZE = select(func.max(_entries.c.idx))
# The size and the latest stored root in one statement (no row: no root stored yet).
_TIP = (
    select(_SIZE.scalar_subquery(), _roots.c.size, _roots.c.root)
    .order_by(_roots.c.size.desc())
    .limit(1)
)
_INSERT_ENTRIES = insert(_entries)
_INSERT_HASHES = insert(_hashes)
_INSERT_ROOT = insert(_roots)
# The same statements for the driver's cursor (:mod:`._rawsql`).
_RAW_TIP = (
    "SELECT (SELECT max(idx) FROM tlog_entries), size, root FROM tlog_roots "
    "ORDER BY size DESC LIMIT 1"
)
_RAW_INSERT_ENTRY = "INSERT INTO tlog_entries (idx, data) VALUES (?, ?)"
_RAW_INSERT_HASH = "INSERT INTO tlog_hashes (level, idx, hash) VALUES (?, ?, ?)"
_RAW_INSERT_ROOT = "INSERT INTO tlog_roots (size, root) VALUES (?, ?)"

#: (the number of entries, (size, root) of the latest stored root or None).
Tip = tuple[int, tuple[int, bytes] | None]

Query = tuple[Select[Any], dict[str, int]]


def _hashes_query(level: int, start: int, end: int) -> Query:
    return _HASHES, {"level": level, "start": start, "end": end}


def _entries_query(start: int, end: int) -> Query:
    return _ENTRIES, {"start": start, "end": end}


def _read(conn: Connection, query: Query, count: int, what: str) -> list[bytes]:
    if count < 0:
        raise LogStoreError(f"cannot read {what}")
    rows = [bytes(value) for value in conn.execute(*query).scalars().all()]
    if len(rows) != count:
        raise LogStoreError(f"the log database lacks {what}: it was damaged or edited")
    return rows


def _append(
    conn: Connection,
    old_size: int,
    entries: Sequence[bytes],
    hashes: Sequence[StoredHash],
    root: bytes | None,
    *,
    size: int | None = None,
) -> None:
    """``size``: the log's size as read in this transaction already (else read here)."""
    current = _size(conn) if size is None else size
    if current != old_size:
        raise AppendConflictError(
            f"the log has {current} entries, not {old_size}: another writer appended first; retry"
        )
    entry_rows = [(old_size + i, e) for i, e in enumerate(entries)]
    root_row = (old_size + len(entries), root) if root is not None and entries else None
    if _rawsql.usable(conn):
        # Fixed statements on the driver's cursor (:mod:`._rawsql`): an append is in every
        # provisioning's transaction.
        for sql, rows in ((_RAW_INSERT_ENTRY, entry_rows), (_RAW_INSERT_HASH, list(hashes))):
            if rows:
                _rawsql.execute(conn, sql, rows, many=True)
        if root_row is not None:
            _rawsql.execute(conn, _RAW_INSERT_ROOT, root_row)
        return
    if entry_rows:
        conn.execute(_INSERT_ENTRIES, [{"idx": i, "data": e} for i, e in entry_rows])
    if hashes:
        conn.execute(_INSERT_HASHES, [{"level": lv, "idx": i, "hash": h} for lv, i, h in hashes])
    if root_row is not None:
        conn.execute(_INSERT_ROOT, {"size": root_row[0], "root": root_row[1]})


def _conflict(old_size: int) -> AppendConflictError:
    return AppendConflictError(
        f"rows for entry {old_size} exist already: another writer appended first "
        "(retry), or the database was edited"
    )


def _tip(conn: Connection) -> Tip:
    if _rawsql.usable(conn):
        row = _rawsql.fetch_one(conn, _RAW_TIP)
    else:
        found = conn.execute(_TIP).first()
        row = None if found is None else tuple(found)
    if row is None:
        return _size(conn), None
    last, size, root = row
    return (0 if last is None else int(last) + 1), (int(size), bytes(root))


def _size(conn: Connection) -> int:
    last = conn.execute(_SIZE).scalar()
    return 0 if last is None else int(last) + 1


def _error(exc: sa_exc.SQLAlchemyError, what: str) -> LogStoreError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return LogStoreError(f"the log database failed while {what}: {reason}")

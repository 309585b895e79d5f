"""Engines for the two supported databases, configured so every transaction is serializable.

- SQLite: WAL (readers never block the writer), ``synchronous=FULL`` (a committed tag
  survives power loss, not only ``kill -9``), foreign keys on, a busy timeout, and every
  transaction opened with ``BEGIN IMMEDIATE``: writers queue on the database lock instead of
  failing half-way, so transactions run one at a time.
- PostgreSQL (psycopg 3): ``SERIALIZABLE`` isolation; a transaction that loses a race fails
  with SQLSTATE 40001 and is re-run by :meth:`SqlStore.run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from securetf.errors import UsageError

__all__ = ["SQLITE_BUSY_TIMEOUT_S", "WRITERS_LOCK_TIMEOUT_S", "make_engine", "parse_url"]

SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10
POOL_SIZE = 16  # connections per process: the CAS's expected concurrency
#: Longest wait for the PostgreSQL writers' lock (held by one writer, of any replica, for
#: one transaction): past it the request fails instead of hanging behind a stuck replica.
WRITERS_LOCK_TIMEOUT_S = 10.0


#: Execution option of a connection whose transactions only read (SQLite: plain BEGIN).
READ_ONLY = "securetf_read_only"


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``; ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"not a database URL: {url!r} (use sqlite:///path/cas.db or postgresql://...)"
        ) from None
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise UsageError(f"a SQLite URL needs a file: sqlite:///path/cas.db, got {url!r}")
        return parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername in ("postgresql", "postgresql+psycopg", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise UsageError(
        f"unsupported database {parsed.drivername!r} in {parsed.render_as_string()!r}: "
        "use sqlite:///path/cas.db or postgresql://user@host/db"
    )


def make_engine(url: URL) -> Engine:
    """An engine for a URL from :func:`parse_url`; nothing connects yet."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        isolation_level="SERIALIZABLE",
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
        pool_pre_ping=True,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(url: URL) -> Engine:
    if url.database is not None and not Path(url.database).parent.is_dir():
        raise UsageError(f"the directory of the SQLite database {url.database} does not exist")
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
        # isolation_level=None hands BEGIN/COMMIT to SQLAlchemy (the "begin" hook below)
        # instead of pysqlite's own deferred BEGIN, which would let two writers deadlock.
        connect_args={
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "isolation_level": None,
            "check_same_thread": False,
        },
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that only reads takes no lock: in WAL mode it reads a snapshot
        # while the writer writes (Store.transaction(writes=False)).
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine

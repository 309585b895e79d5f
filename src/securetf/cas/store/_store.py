"""The store: transactions over one engine, re-run on conflict by :meth:`SqlStore.run`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from securetf.cas._store_api import Store
from securetf.cas.master_key import MasterKey
from securetf.cas.store import _engine
from securetf.cas.store._engine import READ_ONLY, make_engine, parse_url
from securetf.cas.store._errors import StoreError, TransactionConflictError, translate
from securetf.cas.store._schema import init_schema
from securetf.cas.store._sealing import RecordSealer
from securetf.cas.store._state import StateKey, StateTamperedError, VerifiedCache
from securetf.cas.store._tx_audit import AuditOps
from securetf.cas.store._tx_base import create_state_head, read_state_head
from securetf.cas.store._tx_log import LogOps
from securetf.cas.store._tx_policies import PolicyOps
from securetf.cas.store._tx_runtime import RuntimeOps
from securetf.cas.store._tx_secrets import SecretOps
from securetf.crypto import SigningKey, random_bytes
from securetf.log import Edges, FullTiles, LogTree
from securetf.log.sql import SqlLogStore

__all__ = ["MAX_ATTEMPTS", "SqlStore", "SqlTx", "open_store"]

T = TypeVar("T")

MAX_ATTEMPTS = 12  # tries of one block in run() before the conflict reaches the caller
BACKOFF_FIRST_S = 0.002
BACKOFF_MAX_S = 0.25
NONCE_KEY_INFO = b"securetf cas provisioning nonces v1"
# EXCLUSIVE conflicts with itself and with every row write, not with plain reads.
_PG_WRITERS_LOCK = "LOCK TABLE state_head IN EXCLUSIVE MODE"


class SqlTx(PolicyOps, SecretOps, RuntimeOps, AuditOps, LogOps):
    """The :class:`securetf.cas._store_api.Tx` of one SQLAlchemy transaction."""


class SqlStore:
    """A :class:`securetf.cas._store_api.Store` over SQLite or PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        where: str,
        sealer: RecordSealer,
        audit_key: SigningKey,
        state_key: StateKey,
        nonce_key: bytes,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._where = where
        self._sealer = sealer
        self._audit_key = audit_key
        self._state_key = state_key
        self._nonce_key = nonce_key
        self._pg = engine.dialect.name == "postgresql"
        self._verified = VerifiedCache()
        self._sleep = sleep
        self._log: LogTree | None = None
        # The log's full tiles and right edge, kept across requests and the decisions'
        # appends, each used only where the database's own hashes commit to it.
        self._full_tiles = FullTiles()
        self._edges = Edges()
        # SQLite runs one writer at a time anyway; queueing this process's transactions on
        # a lock instead of SQLite's busy-wait (which sleeps in growing steps) keeps the
        # tail latency of concurrent requests at the cost of the work itself.
        self._serial = threading.Lock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def transaction(self, *, writes: bool = True) -> Iterator[SqlTx]:
        """One attempt: commit if the block returns, roll back if it raises.

        A lost race surfaces as :class:`TransactionConflictError`; use :meth:`run` to re-run.
        On PostgreSQL a transaction that ``writes`` first takes the writers' lock (below).
        """
        # A reader on SQLite neither queues behind the writers nor locks the database.
        serial = self._serial if writes else None
        with serial or contextlib.nullcontext():
            try:
                with self._begin(writes) as conn:
                    if writes and self._pg:
                        # Every write moves the one state head row (and the audit and log
                        # heads): concurrent writers, of this process or of other replicas,
                        # would all but one fail at SERIALIZABLE and be re-run, so under load
                        # most work was wasted and a writer could lose MAX_ATTEMPTS times.
                        # They queue on this lock instead. It is taken before the first
                        # query, so the transaction's snapshot is taken after it: it sees
                        # every commit of the writers before it, and conflicts with none.
                        # Readers (plain SELECTs) are not blocked.
                        timeout_ms = int(_engine.WRITERS_LOCK_TIMEOUT_S * 1000)
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {timeout_ms}")
                        conn.exec_driver_sql(_PG_WRITERS_LOCK)
                    tx = SqlTx(
                        conn,
                        self._sealer,
                        self._audit_key,
                        self._state_key,
                        self._verified,
                        log_edges=(self._full_tiles, self._edges),
                    )
                    yield tx
                    tx.flush_state()
            except SQLAlchemyError as exc:
                raise translate(exc, self._where) from exc
            # Committed: the database held each of these trees' roots (what an answer's
            # log proofs are then built from, docs/log.md).
            for edge, index in tx.log_appended:
                self._edges.commit(edge, index)

    @contextmanager
    def _begin(self, writes: bool) -> Iterator[Connection]:
        if writes or self._pg:
            with self._engine.begin() as conn:
                yield conn
            return
        with self._engine.connect() as conn, conn.execution_options(**{READ_ONLY: True}).begin():
            yield conn

    def run(self, fn: Callable[[SqlTx], T], *, writes: bool = True) -> T:
        """``fn`` in a transaction, re-run (at most :data:`MAX_ATTEMPTS` times, with
        randomized exponential backoff) while a concurrent transaction wins.

        ``fn`` must be pure database work through its ``Tx`` argument: it may run more than
        once, and only the last run's effects are committed. Other exceptions (such as
        ``TagConflict``) roll back and propagate at once.
        """
        delay = BACKOFF_FIRST_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.transaction(writes=writes) as tx:
                    return fn(tx)
            except TransactionConflictError:
                if attempt == MAX_ATTEMPTS:
                    raise
            jitter = int.from_bytes(random_bytes(2), "big") / 0xFFFF
            self._sleep(delay * (0.5 + jitter))
            delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")  # pragma: no cover

    def nonce_key(self) -> bytes:
        return self._nonce_key

    def log_reader(self) -> LogTree:
        """The transparency log for reads outside any transaction: rows are only added,
        so a size read first and the hashes under it never change."""
        if self._log is None:
            # Reads only: on SQLite they take no lock (an anonymous log read must never
            # queue the writers), on PostgreSQL the option is ignored.
            store = SqlLogStore(self._engine, read_options={READ_ONLY: True})
            # Full tiles and the right edge are kept across requests (checked against the
            # parent hashes and the root the database holds on each use): a proof reads
            # neither a full tile nor the partial ones (docs/log.md).
            self._log = LogTree(store, full_tiles=self._full_tiles, edges=self._edges)
        return self._log

    def close(self) -> None:
        self._engine.dispose()


def open_store(url: str, *, master_key: MasterKey, audit_key: SigningKey) -> Store:
    """Open (creating its schema if needed) the CAS database at ``url``.

    ``sqlite:///path/cas.db`` or ``postgresql://user@host:port/db`` (psycopg 3; also
    ``postgresql+psycopg://``). Secrets and CA keys are sealed under ``master_key``; audit
    entries are signed with ``audit_key``.
    """
    parsed = parse_url(url)
    where = parsed.render_as_string(hide_password=True)
    engine = make_engine(parsed)
    state_key = StateKey(master_key)
    try:
        _initialize(engine, where, state_key)
    except BaseException:
        engine.dispose()
        raise
    nonce_key = master_key.derive(salt=b"", info=NONCE_KEY_INFO)
    return SqlStore(engine, where, RecordSealer(master_key), audit_key, state_key, nonce_key)


def _initialize(engine: Engine, where: str, state_key: StateKey) -> None:
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StoreError(
            f"cannot connect to the database {where}: {reason} "
            "(check the URL, that the server runs, and the user's rights)"
        ) from exc
    try:
        with conn:
            if engine.dialect.name == "postgresql":
                # Each statement sees others' committed DDL once the init lock is held.
                conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                if init_schema(conn):
                    create_state_head(conn, state_key)
                try:
                    read_state_head(conn, state_key)
                except StateTamperedError as exc:
                    raise StoreError(
                        f"the CAS database {where} does not authenticate under this master "
                        f"key ({exc.detail}): start the CAS with the data directory (master "
                        "key) this database was made with, or restore both from a trusted backup"
                    ) from None
    except SQLAlchemyError as exc:
        raise translate(exc, where) from exc

"""Transactions: all or nothing, re-run on conflict; opening, reopening, bad databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from securetf.cas._records import PolicyCa, PolicyVersion, VolumeTag
from securetf.cas._store_api import Store, Tx
from securetf.cas.master_key import MasterKey
from securetf.cas.store import (
    MAX_ATTEMPTS,
    StoreError,
    TransactionConflictError,
    _engine,
    open_store,
)
from securetf.crypto import SigningKey
from securetf.errors import UsageError
from tests.cas.store.conftest import raw_engine, raw_sql

POLICY = PolicyVersion("p", 1, "sha256:1", b"yaml", (), 1.0)


def write_everything(tx: Tx) -> None:
    tx.insert_policy(POLICY)
    tx.put_secret("p", "s", b"v")
    tx.put_ca(PolicyCa("p", b"k", b"c"))
    tx.spend_nonce(b"n", 1e12)
    tx.swap_tag(None, VolumeTag("p", "vol", "t", 1, 1.0))
    tx.record_request_ids(["r"], 1.0)
    tx.append_audit("k", "p", {}, 1.0)


def test_exception_rolls_back_everything(store: Store, audit_key: SigningKey) -> None:
    def refused(tx: Tx) -> None:
        write_everything(tx)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"), store.transaction() as tx:
        refused(tx)
    with store.transaction() as tx:
        assert tx.policy_names() == []
        assert tx.get_secret("p", "s") is None
        assert tx.get_ca("p") is None
        assert tx.spend_nonce(b"n", 1e12)  # not spent: the spend rolled back
        assert tx.get_tag("p", "vol") is None
        assert tx.seen_request_ids(["r"]) == set()
        assert tx.audit_entries() == []
        # The audit head did not move either: the next entry is seq 1 again.
        assert tx.append_audit("k", None, {}, 2.0).seq == 1


def test_committed_state_survives_reopen(
    db_url: str, store: Store, master_key: MasterKey, audit_key: SigningKey
) -> None:
    store.run(write_everything)
    store.close()
    again = open_store(db_url, master_key=master_key, audit_key=audit_key)
    try:
        with again.transaction() as tx:
            assert tx.current_policy("p") == POLICY
            assert tx.get_secret("p", "s") == b"v"
            assert tx.audit_entries()[0].seq == 1
    finally:
        again.close()


def test_run_returns_and_reruns_on_conflict(store: Store) -> None:
    calls: list[int] = []

    def flaky(tx: Tx) -> str:
        calls.append(1)
        tx.put_secret("p", f"s{len(calls)}", b"v")
        if len(calls) < 3:
            raise TransactionConflictError("simulated lost race")
        return "done"

    assert store.run(flaky) == "done"
    with store.transaction() as tx:  # only the last attempt's writes are kept
        assert [tx.get_secret("p", f"s{i}") for i in (1, 2, 3)] == [None, None, b"v"]


@pytest.mark.parametrize(
    ("error", "attempts"),
    [(TransactionConflictError("simulated lost race"), MAX_ATTEMPTS), (UsageError("no"), 1)],
)
def test_run_stops_after_bounded_conflicts_and_at_other_errors(
    store: Store, error: Exception, attempts: int
) -> None:
    calls: list[int] = []

    def failing(_: Tx) -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        store.run(failing)
    assert len(calls) == attempts


def test_schema_from_a_newer_securetf_is_refused(db_url: str, store: Store) -> None:
    store.close()
    raw_sql(db_url, "UPDATE schema_version SET version = 999")
    with pytest.raises(StoreError, match="schema version 999"):
        open_store(db_url, master_key=MasterKey.generate(), audit_key=SigningKey.generate())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported database"),
        ("not a url", "not a database URL"),
        ("sqlite://", "needs a file"),
        ("sqlite:////nonexistent-dir/cas.db", "does not exist"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        open_store(url, master_key=MasterKey.generate(), audit_key=SigningKey.generate())


def test_unreachable_postgresql_names_the_url() -> None:
    url = "postgresql://nobody:pw@127.0.0.1:1/cas"
    with pytest.raises(StoreError, match=r"cannot connect to the database .*127\.0\.0\.1:1/cas"):
        open_store(url, master_key=MasterKey.generate(), audit_key=SigningKey.generate())


def test_explicit_psycopg_url_and_reopen_are_accepted(
    db_url: str, store: Store, master_key: MasterKey
) -> None:
    store.close()
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    for _ in range(2):  # schema creation is idempotent
        open_store(url, master_key=master_key, audit_key=SigningKey.generate()).close()


def test_sqlite_locked_by_another_process_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite only: a writer holding the lock past the busy timeout is named, not re-run."""
    monkeypatch.setattr(_engine, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "cas.db"
    store = open_store(
        f"sqlite:///{path}", master_key=MasterKey.generate(), audit_key=SigningKey.generate()
    )
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="stayed locked") as caught:
            store.run(lambda tx: tx.policy_names())
        assert not isinstance(caught.value, TransactionConflictError)
    finally:
        holder.close()
        store.close()


def test_a_stuck_writer_fails_other_writers_in_time_and_blocks_no_reader(
    db_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a replica stopped inside a write transaction holds the writers' lock.
    The other writers fail after the lock timeout with an error that says so (instead of
    hanging); readers go on."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the writers' lock is PostgreSQL's (SQLite has its busy timeout)")
    monkeypatch.setattr(_engine, "WRITERS_LOCK_TIMEOUT_S", 0.2)
    store.run(lambda tx: tx.insert_policy(POLICY))
    stuck = raw_engine(db_url)
    try:
        with stuck.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE state_head IN EXCLUSIVE MODE")
            with pytest.raises(StoreError, match="writers' lock"):
                store.run(lambda tx: tx.record_request_ids(["r"], 1.0))
            assert store.run(lambda tx: tx.policy_names(), writes=False) == ["p"]
    finally:
        stuck.dispose()
    store.run(lambda tx: tx.record_request_ids(["r"], 1.0))

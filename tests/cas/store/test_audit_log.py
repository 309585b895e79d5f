"""The audit log in the database: one valid chain under concurrency; tampering is detected."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from securetf.cas._store_api import Store, Tx
from securetf.cas.audit import GENESIS_CHAIN, verify_audit_chain
from securetf.crypto import SigningKey
from securetf.errors import IntegrityError, UsageError
from tests.cas.store.conftest import raw_sql


def assert_log_rejected(store: Store, audit_key: SigningKey, match: str) -> None:
    with store.transaction() as tx:
        entries = tx.audit_entries()
    with pytest.raises(IntegrityError, match=match):
        verify_audit_chain(entries, audit_key.verify_key())


def fill(store: Store, n: int) -> None:
    with store.transaction() as tx:
        for i in range(n):
            tx.append_audit(
                "policy.created" if i % 2 else "evidence.refused", f"p{i}", {"i": i}, 100.0 + i
            )


def test_append_and_read(store: Store, audit_key: SigningKey) -> None:
    with store.transaction() as tx:
        assert tx.audit_entries() == []
        first = tx.append_audit("k", None, {"why": ("a", 1), "ü": None}, 1)
        second = tx.append_audit("k2", "p", {}, 2.5)
    assert (first.seq, second.seq) == (1, 2)
    assert first.detail == {"why": ["a", 1], "ü": None}  # as it reads back
    assert first.time == 1.0
    with store.transaction() as tx:
        entries = tx.audit_entries()
        assert entries == [first, second]
        assert tx.audit_entries(after_seq=1) == [second]
        assert tx.audit_entries(limit=1) == [first]
    assert verify_audit_chain(entries, audit_key.verify_key()) == second.chain


def test_detail_must_be_json(store: Store) -> None:
    with pytest.raises(UsageError), store.transaction() as tx:
        tx.append_audit("k", None, {"b": b"bytes"}, 1.0)


@pytest.mark.slow
def test_concurrent_appends_form_one_chain(
    store: Store, audit_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    backoffs: list[float] = []  # Store.run sleeps only after a transaction lost a race
    monkeypatch.setattr(store, "_sleep", backoffs.append)

    def append_one(detail: dict[str, int], tx: Tx) -> None:
        tx.append_audit("k", None, detail, 1.0)

    def append(worker: int) -> None:
        start.wait()
        for i in range(per_thread):
            store.run(partial(append_one, {"w": worker, "i": i}))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(append, range(threads)))
    with store.transaction() as tx:
        entries = tx.audit_entries()
    assert [e.seq for e in entries] == list(range(1, threads * per_thread + 1))
    verify_audit_chain(entries, audit_key.verify_key(), expected_head=entries[-1].chain)
    assert sorted((e.detail["w"], e.detail["i"]) for e in entries) == [
        (w, i) for w in range(threads) for i in range(per_thread)
    ]
    # Writers queue (SQLite: BEGIN IMMEDIATE; PostgreSQL: the writers' lock) instead of
    # failing and being re-run: none can run out of attempts, however loaded the machine.
    assert backoffs == []


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("UPDATE audit_log SET detail = '{}' WHERE seq = 3", "seq 3 was edited"),
        ("UPDATE audit_log SET kind = 'nothing' WHERE seq = 4", "seq 4 was edited"),
        ("UPDATE audit_log SET time = time + 1 WHERE seq = 2", "seq 2 was edited"),
        ("UPDATE audit_log SET policy = NULL WHERE seq = 5", "seq 5 was edited"),
        ("DELETE FROM audit_log WHERE seq = 3", "entry 3 has seq 4"),
        ("DELETE FROM audit_log WHERE seq = 1", "entry 1 has seq 2"),
        # Reorder: entries 2 and 3 trade places (their seq numbers swap).
        (
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 "
            "WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -2",
            "seq 2 was edited",
        ),
    ],
)
def test_tampered_row_is_detected(
    db_url: str, store: Store, audit_key: SigningKey, tamper: str, bad_seq: str
) -> None:
    fill(store, 6)
    for statement in tamper.split(";"):
        raw_sql(db_url, statement)
    assert_log_rejected(store, audit_key, bad_seq)


def test_recomputed_chain_lacks_the_signature(
    db_url: str, store: Store, audit_key: SigningKey
) -> None:
    """An attacker who edits an entry and recomputes digest and chain still cannot sign."""
    from securetf.cas.audit import make_audit_entry

    fill(store, 3)
    with store.transaction() as tx:
        old = tx.audit_entries()
    forged = make_audit_entry(old[0].chain, 2, 5.0, "forged", None, {}, SigningKey.generate())
    raw_sql(
        db_url,
        "UPDATE audit_log SET kind = 'forged', time = 5.0, policy = NULL, detail = '{}', "
        "digest = :d, chain = :c, signature = :s WHERE seq = 2",
        d=forged.digest,
        c=forged.chain,
        s=forged.signature,
    )
    assert_log_rejected(store, audit_key, "seq 2 is not signed")


def test_removed_tail_is_detected_by_the_pinned_head(
    db_url: str, store: Store, audit_key: SigningKey
) -> None:
    fill(store, 4)
    with store.transaction() as tx:
        head = verify_audit_chain(tx.audit_entries(), audit_key.verify_key())
    raw_sql(db_url, "DELETE FROM audit_log WHERE seq = 4")
    with store.transaction() as tx:
        entries = tx.audit_entries()
    verify_audit_chain(entries, audit_key.verify_key())  # a shorter chain is valid alone...
    with pytest.raises(IntegrityError, match="expected head"):
        verify_audit_chain(entries, audit_key.verify_key(), expected_head=head)  # ...not here
    # And the next append links to the removed entry, so the gap shows from then on.
    with store.transaction() as tx:
        tx.append_audit("k", None, {}, 9.0)
    assert_log_rejected(store, audit_key, "entry 4 has seq 5")


def test_empty_log_head_is_genesis(store: Store, audit_key: SigningKey) -> None:
    with store.transaction() as tx:
        assert verify_audit_chain(tx.audit_entries(), audit_key.verify_key()) == GENESIS_CHAIN

"""Nonces, instances and serials, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from securetf.cas._records import Instance
from securetf.cas._store_api import Store, Tx


def test_a_nonce_is_spent_once(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.spend_nonce(b"n1", expires_at=100.0)
    with store.transaction() as tx:
        assert not tx.spend_nonce(b"n1", expires_at=100.0)
        assert tx.spend_nonce(b"n2", expires_at=100.0)


def test_a_rolled_back_spend_leaves_the_nonce_unspent(store: Store) -> None:
    def refused_grant(tx: Tx) -> None:
        assert tx.spend_nonce(b"n1", expires_at=100.0)
        raise RuntimeError("the grant failed")

    with pytest.raises(RuntimeError, match="the grant failed"):
        store.run(refused_grant)
    assert store.run(lambda tx: tx.spend_nonce(b"n1", expires_at=100.0))


def test_purge_forgets_only_nonces_expired_before(store: Store) -> None:
    with store.transaction() as tx:
        tx.spend_nonce(b"old", expires_at=10.0)
        tx.spend_nonce(b"new", expires_at=30.0)
        tx.purge_nonces(before=20.0)
    with store.transaction() as tx:
        assert tx.spend_nonce(b"old", expires_at=10.0)  # forgotten (its MAC has expired)
        assert not tx.spend_nonce(b"new", expires_at=30.0)  # still spent


def test_concurrent_spenders_of_one_nonce_win_once(store: Store) -> None:
    """16 threads race for each of 10 nonces: exactly one wins each (no double spend)."""
    start = threading.Barrier(16)

    def spend(i: int) -> bool:
        return store.run(lambda tx: tx.spend_nonce(bytes([i]), expires_at=1e12))

    def spend_all(_: int) -> int:
        start.wait()
        return sum(spend(i) for i in range(10))

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(spend_all, range(16))) == 10


def instance(serial: int) -> Instance:
    return Instance(serial, "p", 3, "train", 1, b"\x30\x2a spki", 2000.0, 1000.0, "sim", bytes(32))


def test_instances(store: Store) -> None:
    with store.transaction() as tx:
        serial = tx.next_serial()
        tx.add_instance(instance(serial))
        assert tx.get_instance(serial) == instance(serial)
        assert tx.get_instance(serial + 1) is None


def test_serials_are_fresh_positive_63_bit(store: Store) -> None:
    def draw(tx: Tx) -> list[int]:
        return [tx.next_serial() for _ in range(50)]

    with ThreadPoolExecutor(4) as pool:
        serials = [s for batch in pool.map(lambda _: store.run(draw), range(4)) for s in batch]
    assert len(set(serials)) == len(serials) == 200
    assert all(0 < s < 2**63 for s in serials)

"""Nonces, instances and serials, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from securetf.cas._records import Instance
from securetf.cas._store_api import Store, Tx


def test_nonce_is_single_use(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_nonce(b"n1", expires_at=100.0)
    with store.transaction() as tx:
        assert tx.take_nonce(b"n1", now=50.0)
    with store.transaction() as tx:
        assert not tx.take_nonce(b"n1", now=50.0)
        assert not tx.take_nonce(b"never issued", now=50.0)


def test_expired_nonce_is_refused_and_gone(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_nonce(b"n1", expires_at=100.0)
        tx.add_nonce(b"n2", expires_at=100.0)
    with store.transaction() as tx:
        assert not tx.take_nonce(b"n1", now=100.0)  # expiry is exclusive
        assert not tx.take_nonce(b"n1", now=10.0)  # an expired take consumed it
        assert tx.take_nonce(b"n2", now=99.999)


def test_purge_removes_only_expired_nonces(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_nonce(b"old", expires_at=10.0)
        tx.add_nonce(b"new", expires_at=30.0)
        tx.purge_nonces(now=20.0)
    with store.transaction() as tx:
        assert not tx.take_nonce(b"old", now=5.0)
        assert tx.take_nonce(b"new", now=5.0)


def test_concurrent_takers_of_one_nonce_win_once(store: Store) -> None:
    """16 threads race for each of 10 nonces: exactly one wins each (no double spend)."""
    with store.transaction() as tx:
        for i in range(10):
            tx.add_nonce(bytes([i]), expires_at=1e12)
    start = threading.Barrier(16)

    def take(i: int) -> bool:
        return store.run(lambda tx: tx.take_nonce(bytes([i]), now=1.0))

    def take_all(_: int) -> int:
        start.wait()
        return sum(take(i) for i in range(10))

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(take_all, range(16))) == 10


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

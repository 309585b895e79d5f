"""Volume tags: a real compare-and-swap, monotonic versions, no lost update under races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from securetf.cas._records import VolumeTag
from securetf.cas._store_api import Store, TagConflict, Tx


def tag(name: str, version: int, volume: str = "data") -> VolumeTag:
    return VolumeTag("p", volume, name, version, 10.0 + version)


def test_first_tag_and_swap(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_tag("p", "data") is None
        tx.swap_tag(None, tag("t1", 1))
        tx.swap_tag(None, tag("other", 1, volume="model"))
    with store.transaction() as tx:
        tx.swap_tag("t1", tag("t2", 2))
    with store.transaction() as tx:
        assert tx.get_tag("p", "data") == tag("t2", 2)
        assert tx.get_tag("p", "model") == tag("other", 1, volume="model")


def test_stale_expectation_is_a_conflict_with_the_current_tag(store: Store) -> None:
    with store.transaction() as tx:
        tx.swap_tag(None, tag("t1", 1))
    for expected in (None, "t0", "T1"):
        with pytest.raises(TagConflict) as caught, store.transaction() as tx:
            tx.swap_tag(expected, tag("t9", 9))
        assert caught.value.current == tag("t1", 1)
    with pytest.raises(TagConflict) as caught, store.transaction() as tx:
        tx.swap_tag("t1", tag("t9", 9, volume="absent"))
    assert caught.value.current is None


def test_lower_version_is_refused(store: Store) -> None:
    with store.transaction() as tx:
        tx.swap_tag(None, tag("t5", 5))
    with pytest.raises(TagConflict) as caught, store.transaction() as tx:
        tx.swap_tag("t5", tag("t4", 4))
    assert caught.value.current == tag("t5", 5)
    with store.transaction() as tx:
        tx.swap_tag("t5", tag("t5b", 5))  # the same version with a new tag is allowed
        assert tx.get_tag("p", "data") == tag("t5b", 5)


@pytest.mark.slow
def test_concurrent_increments_lose_no_update(store: Store) -> None:
    """8 threads x 15 read-then-swap increments: every success moves the version by one."""
    with store.transaction() as tx:
        tx.swap_tag(None, tag("v0", 0))
    threads, per_thread = 8, 15
    start = threading.Barrier(threads)

    def swap(expected: str, new: VolumeTag, tx: Tx) -> None:
        tx.swap_tag(expected, new)

    def increment(worker: int) -> int:
        start.wait()
        conflicts = 0
        for i in range(per_thread):
            while True:
                current = store.run(lambda tx: tx.get_tag("p", "data"))
                assert current is not None
                new = tag(f"w{worker}-{i}", current.version + 1)
                try:
                    store.run(partial(swap, current.tag, new))
                    break
                except TagConflict:
                    conflicts += 1
        return conflicts

    with ThreadPoolExecutor(threads) as pool:
        conflicts = sum(pool.map(increment, range(threads)))
    with store.transaction() as tx:
        final = tx.get_tag("p", "data")
    assert final is not None
    assert final.version == threads * per_thread
    assert conflicts > 0  # the threads really raced

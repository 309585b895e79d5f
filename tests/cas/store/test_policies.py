"""Policies, pending updates and request ids, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from securetf.cas._records import PendingUpdate, PolicyVersion
from securetf.cas._store_api import Store
from securetf.errors import PolicyError


def version(name: str, n: int) -> PolicyVersion:
    return PolicyVersion(
        name=name,
        version=n,
        hash=f"sha256:{n:064x}",
        yaml=f"name: {name}\nv: {n}\n".encode(),
        approvals=(b'{"sig":1}', bytes(range(256))),
        created_at=1000.5 + n,
    )


def test_insert_current_history_names(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.current_policy("a") is None
        assert tx.policy_history("a") == []
        assert tx.policy_names() == []
        for n in (1, 2, 3):
            tx.insert_policy(version("b", n))
        tx.insert_policy(version("a", 1))
    with store.transaction() as tx:
        assert tx.current_policy("b") == version("b", 3)
        assert tx.policy_history("b") == [version("b", n) for n in (1, 2, 3)]
        assert tx.policy_names() == ["a", "b"]


def test_insert_existing_version_is_refused(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_policy(version("a", 1))
    changed = PolicyVersion("a", 1, "sha256:other", b"x", (), 5.0)
    with pytest.raises(PolicyError, match="exists already"), store.transaction() as tx:
        tx.insert_policy(changed)
    with store.transaction() as tx:
        assert tx.policy_history("a") == [version("a", 1)]


def pending(name: str, n: int, secrets: tuple[tuple[str, bytes], ...]) -> PendingUpdate:
    return PendingUpdate(name, n, f"sha256:{n}", b"yaml", (b"approval",), secrets, 7.25)


def test_pending_put_replace_delete(store: Store) -> None:
    first = pending("p", 2, (("z-key", b"\x00secret one"), ("a-key", b"two")))
    with store.transaction() as tx:
        assert tx.pending_update("p") is None
        tx.put_pending(first)
    with store.transaction() as tx:
        assert tx.pending_update("p") == first  # secrets keep their order
        second = pending("p", 3, (("other", b"three"),))
        tx.put_pending(second)
        assert tx.pending_update("p") == second
        tx.put_pending(pending("q", 1, ()))
    with store.transaction() as tx:
        tx.delete_pending("p")
        tx.delete_pending("absent")
        assert tx.pending_update("p") is None
        assert tx.pending_update("q") == pending("q", 1, ())


def test_request_ids(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.seen_request_ids(["a", "b"]) == set()
        tx.record_request_ids(["a", "b", "a"], now=1.0)
    with store.transaction() as tx:
        assert tx.seen_request_ids(["a", "c"]) == {"a"}
        tx.record_request_ids(["a", "c"], now=2.0)  # recording again is harmless
        many = [f"id-{i}" for i in range(1200)]
        tx.record_request_ids(many, now=3.0)
    with store.transaction() as tx:
        assert tx.seen_request_ids([*many, "nope"]) == set(many)
        assert tx.seen_request_ids([]) == set()

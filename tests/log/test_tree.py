"""The tree's roots and proofs: equal to the RFC's definitions, verifiable, at any size
it has had, however it was appended to."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securetf.errors import UsageError
from securetf.log import (
    EMPTY_ROOT,
    AppendConflictError,
    LogStoreError,
    LogTree,
    MemoryStore,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from securetf.log._limits import MAX_ENTRY_SIZE
from tests.log.reference import mth, path, subproof

BIG = 70_000  # past 256**2, so level-2 tiles are read as well


def _entry(i: int) -> bytes:
    return b"entry %d" % i


@pytest.fixture(scope="module")
def big() -> tuple[LogTree, list[bytes]]:
    tree = LogTree(MemoryStore())
    tree.extend([_entry(i) for i in range(BIG)])
    return tree, [leaf_hash(_entry(i)) for i in range(BIG)]


def test_known_answers() -> None:
    # golang.org/x/mod sumdb/tlog note_test.go: RecordHash("hello world").
    assert base64.b64encode(leaf_hash(b"hello world")) == (
        b"TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0="
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    tree = LogTree(MemoryStore())
    assert tree.root() == EMPTY_ROOT
    tree.append(b"hello world")
    assert tree.root() == leaf_hash(b"hello world")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=8))
def test_incremental_roots_equal_roots_from_scratch(batches: list[int]) -> None:
    tree = LogTree(MemoryStore())
    leaves: list[bytes] = []
    sizes = [0]
    for n in batches:
        first = tree.extend([_entry(len(leaves) + i) for i in range(n)])
        assert first == len(leaves)
        leaves += [leaf_hash(_entry(len(leaves) + i)) for i in range(n)]
        sizes.append(len(leaves))
        assert tree.root() == mth(leaves)
    for size in sizes:  # every earlier tree head is still there
        assert tree.root(size) == mth(leaves[:size])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_small_proofs_equal_the_rfc_definitions(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 700))
    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(1, size))
    tree = LogTree(MemoryStore())
    tree.extend([_entry(i) for i in range(size)])
    leaves = [leaf_hash(_entry(i)) for i in range(size)]
    assert tree.inclusion_proof(index, size) == path(index, leaves)
    expected = [] if size1 == size else subproof(size1, leaves, True)
    assert tree.consistency_proof(size1, size) == expected


def test_every_proof_of_every_small_tree_equals_the_rfc_definitions() -> None:
    """Each index and each smaller size of each tree up to 40 entries (where the unrolled
    paths' corner cases are: powers of two, a last leaf alone, ragged right edges)."""
    leaves = [leaf_hash(_entry(i)) for i in range(40)]
    tree = LogTree(MemoryStore())
    tree.extend([_entry(i) for i in range(40)])
    for size in range(1, 41):
        for index in range(size):
            assert tree.inclusion_proof(index, size) == path(index, leaves[:size])
        for size1 in range(1, size):
            assert tree.consistency_proof(size1, size) == subproof(size1, leaves[:size], True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_proofs_verify_at_random_sizes(
    big: tuple[LogTree, list[bytes]], data: st.DataObject
) -> None:
    tree, leaves = big
    size = data.draw(st.one_of(st.integers(1, BIG), st.sampled_from([256, 65536, 65537, BIG])))
    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(1, size))
    root, root1 = tree.root(size), tree.root(size1)
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(leaves[index], index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"not in the log"), index, size, proof, root)
    verify_consistency(size1, size, tree.consistency_proof(size1, size), root1, root)


def test_big_roots_equal_the_definition(big: tuple[LogTree, list[bytes]]) -> None:
    tree, leaves = big
    for size in (65535, 65536, 65537, BIG):
        assert tree.root(size) == mth(leaves[:size])


def test_sizes_outside_the_log_are_refused(big: tuple[LogTree, list[bytes]]) -> None:
    tree, _ = big
    with pytest.raises(ProofError, match="never had"):
        tree.root(BIG + 1)
    with pytest.raises(ProofError):
        tree.inclusion_proof(BIG, BIG)
    with pytest.raises(ProofError):
        tree.consistency_proof(0, 5)
    with pytest.raises(ProofError):
        tree.consistency_proof(6, 5)
    with pytest.raises(ProofError):
        tree.tile(0, BIG // 256 + 1, BIG)


def test_tiles_are_the_tlog_tiles_rows(big: tuple[LogTree, list[bytes]]) -> None:
    tree, leaves = big
    assert tree.tile(0, 0, BIG) == b"".join(leaves[:256])
    assert len(tree.tile(0, BIG // 256, BIG)) == (BIG % 256) * 32
    assert tree.tile(1, 0, BIG)[:32] == mth(leaves[:256])
    assert tree.tile(2, 0, BIG) == mth(leaves[:65536])
    assert tree.tile(0, 0, 5) == b"".join(leaves[:5])


def test_an_oversized_entry_is_refused() -> None:
    tree = LogTree(MemoryStore())
    tree.append(b"x" * MAX_ENTRY_SIZE)
    with pytest.raises(UsageError, match="at most"):
        tree.append(b"x" * (MAX_ENTRY_SIZE + 1))
    assert tree.size() == 1


def test_a_stale_append_is_a_conflict_and_leaves_nothing() -> None:
    store = MemoryStore()
    LogTree(store).extend([b"a", b"b"])
    with pytest.raises(AppendConflictError):
        store.append(1, [b"c"], [(0, 1, leaf_hash(b"c"))])
    with pytest.raises(LogStoreError, match="gap"):
        store.append(2, [b"c"], [(0, 3, leaf_hash(b"c"))])
    assert store.size() == 2
    assert store.read_hashes(0, 0, 2) == [leaf_hash(b"a"), leaf_hash(b"b")]
    with pytest.raises(LogStoreError):
        store.read_entries(1, 3)

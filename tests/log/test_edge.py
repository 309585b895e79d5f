"""The tree's right edge kept in memory (the CAS's) gives the same rows, roots and proofs as
the database, and is never used once the database's stored root no longer commits to it:
a database put back to an older copy and grown again, by another writer with or without
roots, is read from its rows (:mod:`securetf.log._edge`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from securetf.log import Edges, FullTiles, LogTree, MemoryStore, leaf_hash
from securetf.log._edge import build_edge, extend_edge
from securetf.log._proofs import SubtreeHashes, consistency_proof, inclusion_proof
from securetf.log._tree import StoreTiles, _new_hashes
from securetf.log.sql import SqlLogStore
from tests.log.reads import count_tile_reads


def _entries(start: int, end: int, tag: bytes = b"entry") -> list[bytes]:
    return [b"%s %d" % (tag, i) for i in range(start, end)]


def test_an_extended_edge_gives_the_rows_roots_and_proofs_of_the_tree() -> None:
    """Appends of 1..300 leaves across tile and level boundaries (level 2 starts at 65,536):
    the rows are those the store path computes, the edge is the one read from the rows,
    and proofs from it match the tree's."""
    rng = random.Random(14)
    store, full = MemoryStore(), FullTiles()
    edge = build_edge(SubtreeHashes(StoreTiles(store), 0))
    size = 0
    while size < 66_000:
        count = rng.choice([1, 1, 2, 3, 17, 255, 300]) if size < 65_000 else 1
        entries = _entries(size, size + count)
        leaves = [leaf_hash(e) for e in entries]
        rows = _new_hashes(store, size, leaves)
        edge, got = extend_edge(edge, leaves, full)
        assert got == rows
        store.append(size, entries, rows)
        size += count
        if rng.random() < 0.03 or 65_530 < size < 65_545:
            tree = LogTree(store)
            read = build_edge(SubtreeHashes(StoreTiles(store), size))
            assert edge.root == read.root == tree.root(size)
            assert dict(edge.nodes) == dict(read.nodes)
            kept = SubtreeHashes(StoreTiles(store), size, full, edge.nodes)
            for index in {0, 1, size // 2, size - 1}:
                assert inclusion_proof(kept, index) == tree.inclusion_proof(index, size)
            old = max(1, size - 5)
            assert consistency_proof(kept, old) == tree.consistency_proof(old, size)


SIZE = 700


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return create_engine(f"sqlite:///{tmp_path / 'log.db'}")


def _kept(engine: Engine) -> tuple[LogTree, Edges]:
    """A writer and reader that keeps the edge, as the CAS does, with SIZE entries."""
    edges = Edges()
    tree = LogTree(SqlLogStore(engine), full_tiles=FullTiles(), edges=edges)
    for i in range(SIZE):
        tree.append(b"entry %d" % i)
    return tree, edges


def _put_back(engine: Engine, size: int) -> None:
    """The database as an older copy of it held it: the log of ``size`` entries."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tlog_entries WHERE idx >= :n"), {"n": size})
        conn.execute(text("DELETE FROM tlog_roots WHERE size > :n"), {"n": size})
        for level in range(3):
            conn.execute(
                text("DELETE FROM tlog_hashes WHERE level = :l AND idx >= :n"),
                {"l": level, "n": size >> (8 * level)},
            )


def _assert_as_the_database_says(tree: LogTree, engine: Engine) -> None:
    fresh = LogTree(SqlLogStore(engine))  # no memory: what the database now holds
    size = fresh.size()
    latest = tree.latest()
    assert (latest.size, latest.root()) == (size, fresh.root(size))
    for index in (1, 600, size - 1):
        assert inclusion_proof(latest, index) == fresh.inclusion_proof(index, size)
    assert consistency_proof(latest, 650) == fresh.consistency_proof(650, size)
    for index in (600, size - 1):
        assert tree.entry_in(latest, index) == fresh.entries(index, index + 1)[0]


@pytest.mark.parametrize("other_keeps_roots", [True, False])
@pytest.mark.parametrize("grown", [0, 3], ids=["same size", "larger"])
def test_a_database_put_back_and_grown_again_is_read_from_its_rows(
    engine: Engine, other_keeps_roots: bool, grown: int
) -> None:
    """Put back to 600 entries, then another writer (a replica that keeps roots, or one
    that does not) appends another history up to the size of the kept edge or past it:
    the kept edge and the kept entries are not used, the tree is the database's."""
    tree, _ = _kept(engine)
    tree.latest().root()
    _put_back(engine, 600)
    other = LogTree(SqlLogStore(engine), edges=Edges() if other_keeps_roots else None)
    other.extend(_entries(600, SIZE + grown, b"other"))
    _assert_as_the_database_says(tree, engine)
    # The kept writer appends after it: its rows and root are the database's tree's.
    tree.append(b"after")
    _assert_as_the_database_says(tree, engine)


def test_the_kept_edge_and_entries_serve_the_tree_without_reading_partial_tiles(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, _ = _kept(engine)
    tree.latest()
    reads = count_tile_reads(monkeypatch)
    entry_reads: list[int] = []
    read_entries = SqlLogStore.read_entries

    def counted(self: SqlLogStore, start: int, end: int) -> list[bytes]:
        entry_reads.append(start)
        return read_entries(self, start, end)

    monkeypatch.setattr(SqlLogStore, "read_entries", counted)
    tree.append(b"one more")
    latest = tree.latest()
    inclusion_proof(latest, SIZE)
    assert tree.entry_in(latest, SIZE) == b"one more"
    assert [r for r in reads if r[2] < 256] == []
    assert entry_reads == []
    _assert_as_the_database_says(tree, engine)


def test_an_entry_read_again_stays_kept_while_newer_ones_come_and_go() -> None:
    """The entry every answer names (a policy version's) is served from memory however many
    newer entries are appended after it; one no longer read is dropped first."""
    edges = Edges(entries=4)
    edges.keep_entries(0, [b"policy", b"a", b"b", b"c"])
    for start in range(4, 40):
        assert edges.entry(0) == b"policy"
        edges.keep_entries(start, [b"new"])
    assert edges.entry(0) == b"policy"
    assert edges.entry(1) is None

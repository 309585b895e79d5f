"""Full tiles kept in memory by a long-lived reader (the CAS) give the same roots and proofs
as the database, read no tile the tree already proves, and are never used once the
database's parent hash no longer commits to them (a database put back or edited)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from securetf.log import FullTiles, LogTree, MemoryStore, leaf_hash
from securetf.log.sql import SqlLogStore
from tests.log.reads import count_tile_reads

SIZE = 3000


def _entries(start: int, end: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(start, end)]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    LogTree(SqlLogStore(engine)).extend(_entries(0, SIZE))
    return engine


def test_kept_tiles_give_the_databases_roots_and_proofs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = LogTree(MemoryStore())
    memory.extend(_entries(0, SIZE))
    kept = LogTree(SqlLogStore(engine), full_tiles=FullTiles())
    for size in (300, 1024, 2999, SIZE):
        for index in (i for i in (0, 5, 255, 256, 1000, size - 1) if i < size):
            assert kept.inclusion_proof(index, size) == memory.inclusion_proof(index, size)
        assert kept.root(size) == memory.root(size)
        assert kept.consistency_proof(17, size) == memory.consistency_proof(17, size)
    reads = count_tile_reads(monkeypatch)
    kept.inclusion_proof(3, SIZE)  # an old entry: its full tile is kept
    assert (0, 0, 256) not in reads


def _edit_tile(engine: Engine, *, parent_too: bool) -> None:
    """Another history for entries 0..255, as a restored or edited database holds it."""
    other = LogTree(MemoryStore())
    other.extend([b"other %d" % i for i in range(256)])
    with engine.begin() as conn:
        for i in range(256):
            h = leaf_hash(b"other %d" % i)
            conn.execute(
                text("UPDATE tlog_hashes SET hash = :h WHERE level = 0 AND idx = :i"),
                {"h": h, "i": i},
            )
        if parent_too:
            conn.execute(
                text("UPDATE tlog_hashes SET hash = :h WHERE level = 1 AND idx = 0"),
                {"h": other.root(256)},
            )


def test_a_kept_tile_is_not_used_once_the_parent_hash_changed(engine: Engine) -> None:
    kept = LogTree(SqlLogStore(engine), full_tiles=FullTiles())
    before = kept.inclusion_proof(3, SIZE)
    _edit_tile(engine, parent_too=True)
    fresh = LogTree(SqlLogStore(engine))  # no memory: what the database now says
    assert kept.inclusion_proof(3, SIZE) == fresh.inclusion_proof(3, SIZE) != before


def test_a_tile_edited_under_its_parent_is_served_as_the_parent_commits(engine: Engine) -> None:
    """Rows edited without their parent: the tree's root still commits to the kept tile,
    so the kept proof is the one that verifies; the database's own would not."""
    kept = LogTree(SqlLogStore(engine), full_tiles=FullTiles())
    before = kept.inclusion_proof(3, SIZE)
    _edit_tile(engine, parent_too=False)
    assert kept.inclusion_proof(3, SIZE) == before


def test_an_inconsistent_tile_is_never_kept(engine: Engine) -> None:
    _edit_tile(engine, parent_too=False)  # level-0 rows that do not hash to their parent
    full = FullTiles()
    LogTree(SqlLogStore(engine), full_tiles=full).inclusion_proof(3, SIZE)
    assert full.get(0, 0, LogTree(SqlLogStore(engine)).at(SIZE).node(8, 0)) is None

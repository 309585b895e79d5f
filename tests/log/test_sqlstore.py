"""The SQL store gives the same tree as memory, survives a reopen, refuses a second
writer at the same size, and names a damaged database instead of computing on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text

from securetf.cas.store._engine import make_engine, parse_url
from securetf.log import (
    AppendConflictError,
    LogStoreError,
    LogTree,
    MemoryStore,
    ProofError,
    leaf_hash,
)
from securetf.log.sql import ConnectionLogStore, SqlLogStore

SIZE = 3000


def _entries(start: int, end: int) -> list[bytes]:
    return [b"record %d" % i for i in range(start, end)]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogTree, LogTree]:
    path = tmp_path_factory.mktemp("sql") / "log.db"
    sql, memory = LogTree(SqlLogStore(create_engine(f"sqlite:///{path}"))), LogTree(MemoryStore())
    for start in range(0, SIZE, 700):  # batches that straddle tile edges
        end = min(SIZE, start + 700)
        sql.extend(_entries(start, end))
        memory.extend(_entries(start, end))
    return sql, memory


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_sql_and_memory_trees_agree(trees: tuple[LogTree, LogTree], data: st.DataObject) -> None:
    sql, memory = trees
    size = data.draw(st.integers(1, SIZE))
    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(1, size))
    assert sql.root(size) == memory.root(size)
    assert sql.inclusion_proof(index, size) == memory.inclusion_proof(index, size)
    assert sql.consistency_proof(size1, size) == memory.consistency_proof(size1, size)
    assert sql.entries(index, index + 1) == _entries(index, index + 1)


def _engine(path: Path) -> Engine:
    # The CAS's own engine: WAL, synchronous=FULL, BEGIN IMMEDIATE.
    return make_engine(parse_url(f"sqlite:///{path}"))


def test_a_reopened_store_has_the_same_tree(tmp_path: Path) -> None:
    tree = LogTree(SqlLogStore(_engine(tmp_path / "log.db")))
    tree.extend(_entries(0, 300))
    tree.append(b"one more")
    root = tree.root()
    again = LogTree(SqlLogStore(_engine(tmp_path / "log.db")))
    assert again.size() == 301
    assert again.root() == root
    assert again.root(256) == tree.root(256)


def test_a_second_writer_at_the_same_size_conflicts(tmp_path: Path) -> None:
    first, second = (SqlLogStore(_engine(tmp_path / "log.db")) for _ in range(2))
    LogTree(first).extend(_entries(0, 10))
    with pytest.raises(AppendConflictError, match="retry"):
        second.append(9, [b"late"], [(0, 9, leaf_hash(b"late"))])
    # A writer whose size check passes but whose rows collide is refused by the keys.
    with pytest.raises(AppendConflictError):
        second.append(10, [b"x"], [(0, 3, leaf_hash(b"x"))])
    assert LogTree(second).size() == 10
    assert LogTree(second).root() == LogTree(first).root()


def _row(index: int, entry: bytes) -> list[tuple[int, int, bytes]]:
    return [(0, index, leaf_hash(entry))]


def test_an_append_in_a_transaction_checks_the_size_it_read_there(tmp_path: Path) -> None:
    """The size read in a transaction serves its appends (no second read): an append at any
    other size is still refused, and so is one after the transaction that read it."""
    engine = _engine(tmp_path / "log.db")
    SqlLogStore(engine)
    LogTree(SqlLogStore(engine)).extend(_entries(0, 5))
    with engine.connect() as conn:
        store = ConnectionLogStore(conn)
        with conn.begin():
            assert store.tip()[0] == 5
            for gap in (4, 6):
                with pytest.raises(AppendConflictError, match="retry"):
                    store.append(gap, [b"x"], _row(gap, b"x"))
            store.append(5, [b"5"], _row(5, b"5"))
            with pytest.raises(AppendConflictError, match="retry"):
                store.append(5, [b"again"], _row(5, b"again"))
        # Another writer appends between this store's transactions: the next one reads
        # the size again rather than trust the one it read before.
        LogTree(SqlLogStore(engine)).append(b"6")
        with conn.begin(), pytest.raises(AppendConflictError, match="retry"):
            store.append(6, [b"late"], _row(6, b"late"))
    assert LogTree(SqlLogStore(engine)).entries(5, 7) == [b"5", b"6"]


def test_a_savepoint_rolled_back_takes_its_append_with_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "log.db")
    LogTree(SqlLogStore(engine)).extend(_entries(0, 3))
    with engine.connect() as conn, conn.begin():
        store = ConnectionLogStore(conn)
        assert store.size() == 3
        savepoint = conn.begin_nested()
        store.append(3, [b"undone"], _row(3, b"undone"))
        savepoint.rollback()
        # The size after the append is gone with it: an append past it leaves no gap.
        with pytest.raises(AppendConflictError, match="retry"):
            store.append(4, [b"gap"], _row(4, b"gap"))
        store.append(3, [b"kept"], _row(3, b"kept"))
    tree = LogTree(SqlLogStore(engine))
    assert tree.size() == 4
    assert tree.entries(3, 4) == [b"kept"]


def test_a_deleted_hash_row_is_named_not_computed_around(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    tree = LogTree(SqlLogStore(engine))
    tree.extend(_entries(0, 600))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tlog_hashes WHERE level = 0 AND idx = 550"))
    with pytest.raises(LogStoreError, match="damaged or edited"):
        tree.root()
    with pytest.raises(LogStoreError):
        tree.inclusion_proof(100, 600)


def test_an_edited_hash_row_gives_proofs_that_do_not_verify(tmp_path: Path) -> None:
    from securetf.log import verify_inclusion

    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    tree = LogTree(SqlLogStore(engine))
    tree.extend(_entries(0, 600))
    root = tree.root()  # the root a checkpoint signed before the edit
    with engine.begin() as conn:
        conn.execute(text("UPDATE tlog_hashes SET hash = zeroblob(32) WHERE level = 0 AND idx = 1"))
    proof = tree.inclusion_proof(0, 600)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(_entries(0, 1)[0]), 0, 600, proof, root)


def test_an_unusable_database_is_a_log_store_error(tmp_path: Path) -> None:
    (tmp_path / "log.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogStoreError, match="creating the log tables"):
        SqlLogStore(create_engine(f"sqlite:///{tmp_path / 'log.db'}"))

"""The log's statements that run on the driver's cursor (securetf.log._rawsql) are part of
the CAS's transaction, and fail as every other statement of it does."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from securetf.cas._store_api import Store
from securetf.cas.store import StoreError
from securetf.log import _rawsql


def _size(store: Store) -> int:
    return store.run(lambda tx: tx.log_tree().size(), writes=False)


def test_an_append_is_undone_with_its_transaction(store: Store) -> None:
    before = _size(store)

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        with store.transaction() as tx:
            index = tx.append_log(b'{"type":"test"}', "test-ref")
            # The rows written on the cursor are this transaction's: its reads see them.
            assert tx.log_ref("test-ref") == index
            assert tx.log_tree().size() == before + 1
            raise Undo
    assert _size(store) == before
    assert store.run(lambda tx: tx.log_ref("test-ref"), writes=False) is None
    index = store.run(lambda tx: tx.append_log(b'{"type":"test"}', "test-ref"))
    assert index == before
    assert store.run(lambda tx: tx.log_ref("test-ref"), writes=False) == index


def test_a_failing_statement_is_the_stores_error(store: Store) -> None:
    """A driver error on the cursor is raised as SQLAlchemy's, so the transaction turns it
    into a StoreError (and a lost race into a conflict that is re-run) as for any other."""
    store.run(lambda tx: tx.append_log(b'{"type":"test"}'))
    with pytest.raises(StoreError) as caught:
        with store.transaction() as tx:
            conn = tx._conn  # type: ignore[attr-defined]
            assert _rawsql.usable(conn)
            _rawsql.execute(conn, "INSERT INTO tlog_entries (idx, data) VALUES (?, ?)", (0, b"x"))
    cause = caught.value.__cause__
    assert isinstance(cause, sa_exc.IntegrityError)
    assert isinstance(cause.orig, conn.dialect.loaded_dbapi.Error)
    assert _size(store) == 1

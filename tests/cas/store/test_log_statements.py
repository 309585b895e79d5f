"""The log's statements that run on the driver's cursor (securetf.log._rawsql) are part of
the CAS's transaction, and fail as every other statement of it does."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from securetf.cas._store_api import Store
from securetf.cas.store import StoreError
from securetf.log import _rawsql

ENTRY = b'{"type":"test"}'


class UndoError(Exception):
    """Raised inside a transaction to roll it back."""


def _size(store: Store) -> int:
    return store.run(lambda tx: tx.log_tree().size(), writes=False)


def _ref(store: Store) -> int | None:
    return store.run(lambda tx: tx.log_ref("test-ref"), writes=False)


def _append_then_undo(store: Store, before: int) -> None:
    with store.transaction() as tx:
        index = tx.append_log(ENTRY, "test-ref")
        # The rows written on the cursor are this transaction's: its reads see them.
        assert tx.log_ref("test-ref") == index
        assert tx.log_tree().size() == before + 1
        raise UndoError


def test_an_append_is_undone_with_its_transaction(store: Store) -> None:
    before = _size(store)
    with pytest.raises(UndoError):
        _append_then_undo(store, before)
    assert _size(store) == before
    assert _ref(store) is None
    index = store.run(lambda tx: tx.append_log(ENTRY, "test-ref"))
    assert index == before
    assert _ref(store) == index


def _insert_entry_zero_again(store: Store) -> None:
    """Insert a second entry 0 on the cursor, in a transaction of the store."""
    with store.transaction() as tx:
        conn = tx._conn  # type: ignore[attr-defined]
        assert _rawsql.usable(conn)
        _rawsql.execute(conn, "INSERT INTO tlog_entries (idx, data) VALUES (?, ?)", (0, b"x"))


def test_a_failing_statement_is_the_stores_error(store: Store) -> None:
    """A driver error on the cursor is raised as SQLAlchemy's, so the transaction turns it
    into a StoreError (and a lost race into a conflict that is re-run) as for any other."""
    store.run(lambda tx: tx.append_log(ENTRY))
    with pytest.raises(StoreError) as caught:
        _insert_entry_zero_again(store)
    cause = caught.value.__cause__
    assert isinstance(cause, sa_exc.IntegrityError)
    assert type(cause.orig).__module__.split(".")[0] in ("sqlite3", "psycopg")  # the driver's
    assert _size(store) == 1

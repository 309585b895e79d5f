"""Fixed statements on the driver's cursor, inside a transaction SQLAlchemy owns.

A statement through SQLAlchemy Core costs 25-35 us of CPU here even when its compiled
form is cached (events, parameter processing, result set-up); the same statement on the
driver's cursor costs about 3 us. The log's append runs in every provisioning's
transaction, so its few fixed statements take this path. They are written once, with
``?`` placeholders (SQLite's; PostgreSQL's driver gets ``%s``), and a driver error is
raised as the SQLAlchemy error it would have been, so the owner of the transaction sees
conflicts and failures exactly as before (a serialization failure stays a retryable
``OperationalError``, a duplicate key an ``IntegrityError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

__all__ = ["execute", "fetch_one", "usable"]

Params = Sequence[Any]


def usable(conn: Connection) -> bool:
    """Whether ``conn`` is in a transaction on a driver whose placeholders are known (else
    the caller uses SQLAlchemy: the cursor would not see SQLAlchemy's autobegin)."""
    return conn.in_transaction() and conn.dialect.paramstyle in ("qmark", "format", "pyformat")


def execute(
    conn: Connection, sql: str, params: Params | Sequence[Params], *, many: bool = False
) -> None:
    """Run ``sql`` once with ``params``, or once per item of them with ``many``."""
    _run(conn, sql, params, many=many, fetch=False)


def fetch_one(conn: Connection, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
    """The first row of ``sql``, or None."""
    return _run(conn, sql, params, many=False, fetch=True)


def _run(
    conn: Connection, sql: str, params: Params | Sequence[Params], *, many: bool, fetch: bool
) -> tuple[Any, ...] | None:
    dialect = conn.dialect
    if dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, params)
            return None
        cursor.execute(sql, params)
        if not fetch:
            return None
        row = cursor.fetchone()
        return None if row is None else tuple(row)
    except dialect.loaded_dbapi.Error as exc:
        raise sa_exc.DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()

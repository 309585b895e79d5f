"""Database failures as securetf errors, with a message an operator can act on."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from securetf.cas.store import _engine
from securetf.errors import Error

__all__ = ["StoreError", "TransactionConflictError", "translate"]

# PostgreSQL SQLSTATEs after which re-running the whole transaction is the documented fix.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout passed


class StoreError(Error):
    """The CAS database failed (unreachable, locked, damaged, or from a newer securetf)."""


class TransactionConflictError(StoreError):
    """A concurrent transaction won; re-running the block is safe (:meth:`SqlStore.run` does)."""


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _sqlite_busy(exc: sa_exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return isinstance(exc, sa_exc.OperationalError) and (
        "database is locked" in text or "database is busy" in text
    )


def translate(exc: sa_exc.SQLAlchemyError, where: str) -> StoreError:
    """The securetf error for a SQLAlchemy/driver error raised while using ``where``."""
    if isinstance(exc, sa_exc.DBAPIError):
        reason = (
            str(exc.orig).strip().splitlines()[0]
            if str(exc.orig).strip()
            else type(exc.orig).__name__
        )
        if _sqlstate(exc) in _RETRYABLE_SQLSTATES:
            return TransactionConflictError(
                f"a concurrent transaction on {where} conflicted with this one ({reason}); retry"
            )
        if _sqlstate(exc) == _LOCK_NOT_AVAILABLE:
            return StoreError(
                f"another CAS process held the writers' lock on {where} for over "
                f"{_engine.WRITERS_LOCK_TIMEOUT_S:g} s (stopped, or stuck in a transaction); "
                "retry, and restart that replica if it persists"
            )
        if _sqlite_busy(exc):
            # Not a conflict to re-run: BEGIN IMMEDIATE already waited the busy timeout.
            return StoreError(
                f"the database {where} stayed locked by another process for the whole busy "
                "timeout; stop the other process that holds it, or retry later"
            )
        if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
            return StoreError(f"lost the connection to the database {where}: {reason}")
        if isinstance(exc, sa_exc.IntegrityError):
            return StoreError(f"the database {where} refused a write (constraint): {reason}")
        if isinstance(exc, sa_exc.OperationalError):
            return StoreError(f"cannot use the database {where}: {reason}")
        return StoreError(f"database error on {where}: {reason}")
    return StoreError(f"database error on {where}: {exc}")

"""The CAS store: policies, secrets, CAs, nonces, instances, tags and the audit log in
SQLite or PostgreSQL through SQLAlchemy, with secrets sealed under the CAS master key."""

from securetf.cas.store._errors import StoreError, TransactionConflictError
from securetf.cas.store._state import StateTamperedError
from securetf.cas.store._store import MAX_ATTEMPTS, open_store

__all__ = [
    "MAX_ATTEMPTS",
    "StateTamperedError",
    "StoreError",
    "TransactionConflictError",
    "open_store",
]

"""The log's errors: each says what did not match, never a secret.

A client tells them apart: :class:`ForkError` is evidence that the log showed two
different trees of one size (keep both checkpoints), :class:`LogRollbackError` that it
showed a smaller tree than one seen before, :class:`ProofError` any other proof that does
not verify (a broken mirror looks the same as a lying one).
"""

from __future__ import annotations

from securetf.errors import AuthenticationError, Error, IntegrityError, RollbackError

__all__ = [
    "AppendConflictError",
    "ForkError",
    "LogRollbackError",
    "LogStoreError",
    "NoteError",
    "ProofError",
]


class ProofError(IntegrityError):
    """A Merkle inclusion or consistency proof, or the data it was built from, is wrong."""


class ForkError(ProofError):
    """Two tree heads of the same size have different roots: the log forked."""


class LogRollbackError(ProofError, RollbackError):
    """A tree head is smaller than one the caller already holds: the log went back."""


class NoteError(AuthenticationError):
    """A signed note or checkpoint is malformed, or lacks the signatures it needs."""


class LogStoreError(Error):
    """The log's store failed, or lacks rows it must have (damaged or edited)."""


class AppendConflictError(LogStoreError):
    """Another writer appended first; recomputing and appending again is safe."""

"""The transparency log: an RFC 9162 Merkle tree, C2SP checkpoints, cosignatures, tiles.

docs/log.md describes the formats and the algorithms.
"""

from securetf.log._errors import (
    AppendConflictError,
    ForkError,
    LogRollbackError,
    LogStoreError,
    NoteError,
    ProofError,
)
from securetf.log._hashing import EMPTY_ROOT, leaf_hash, node_hash
from securetf.log._proofs import TileSource
from securetf.log._store import LogStore, MemoryStore
from securetf.log._tree import LogTree
from securetf.log._verify import verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "AppendConflictError",
    "ForkError",
    "LogRollbackError",
    "LogStore",
    "LogStoreError",
    "LogTree",
    "MemoryStore",
    "NoteError",
    "ProofError",
    "TileSource",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

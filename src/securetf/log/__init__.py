"""The transparency log: an RFC 9162 Merkle tree, C2SP checkpoints, cosignatures, tiles.

docs/log.md describes the formats and the algorithms.
"""

from securetf.log._checkpoint import Checkpoint
from securetf.log._errors import (
    AppendConflictError,
    ForkError,
    LogRollbackError,
    LogStoreError,
    NoteError,
    ProofError,
)
from securetf.log._hashing import EMPTY_ROOT, leaf_hash, node_hash
from securetf.log._keys import (
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    NoteVerifier,
    key_id,
    parse_vkey,
)
from securetf.log._note import (
    NoteSignature,
    NoteSigner,
    OpenedNote,
    Verifiers,
    open_note,
    sign_note,
    signature_line,
)
from securetf.log._proofs import TileSource
from securetf.log._store import LogStore, MemoryStore
from securetf.log._tree import LogTree
from securetf.log._verify import verify_consistency, verify_inclusion
from securetf.log._witness import VerifiedCheckpoint, WitnessPolicy, verify_checkpoint

__all__ = [
    "EMPTY_ROOT",
    "AppendConflictError",
    "Checkpoint",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "ForkError",
    "LogRollbackError",
    "LogStore",
    "LogStoreError",
    "LogTree",
    "MemoryStore",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "ProofError",
    "TileSource",
    "VerifiedCheckpoint",
    "Verifiers",
    "WitnessPolicy",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_vkey",
    "sign_note",
    "signature_line",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]

"""The transparency log: an RFC 9162 Merkle tree, C2SP checkpoints, cosignatures, tiles.

docs/log.md describes the formats and the algorithms. The SQL store is
:mod:`securetf.log.sql`, apart, so that a client that only verifies does not load
SQLAlchemy.
"""

from securetf.log._checkpoint import Checkpoint
from securetf.log._edge import Edges
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
from securetf.log._proofs import FullTiles, TileSource
from securetf.log._store import LogStore, MemoryStore
from securetf.log._tiledir import (
    Fetch,
    TileClient,
    directory_fetch,
    verify_extension,
    write_tiles,
)
from securetf.log._tilepath import (
    decode_bundle,
    encode_bundle,
    parse_tile_path,
    tile_path,
    tiles_for_size,
)
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
    "Edges",
    "Fetch",
    "ForkError",
    "FullTiles",
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
    "TileClient",
    "TileSource",
    "VerifiedCheckpoint",
    "Verifiers",
    "WitnessPolicy",
    "decode_bundle",
    "directory_fetch",
    "encode_bundle",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_tile_path",
    "parse_vkey",
    "sign_note",
    "signature_line",
    "tile_path",
    "tiles_for_size",
    "verify_checkpoint",
    "verify_consistency",
    "verify_extension",
    "verify_inclusion",
    "write_tiles",
]

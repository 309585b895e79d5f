"""The log's named limits: every bound on untrusted input is one of these."""

from __future__ import annotations

__all__ = [
    "HASH_SIZE",
    "MAX_ENTRY_SIZE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
]

#: SHA-256, the only hash of RFC 6962 / RFC 9162 logs and of tlog-tiles.
HASH_SIZE = 32

#: Hashes in a full tile (tlog-tiles): a tile spans 8 levels of the tree.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

#: The largest tree a checkpoint may name: sizes fit a signed 64-bit column (PostgreSQL
#: BIGINT) and Go's int64, so every party agrees on them.
MAX_TREE_SIZE = (1 << 63) - 1

#: Entry bundles prefix each entry with a big-endian uint16 length (tlog-tiles).
MAX_ENTRY_SIZE = 0xFFFF

#: A signed note's bytes, signatures included. signed-note asks verifiers to accept at
#: least 16 signatures of up to about 5 kB (post-quantum); 256 KiB leaves room for that
#: and bounds what an anonymous client can make us parse.
MAX_NOTE_SIZE = 256 * 1024

#: Signature lines in a note, known or not (Go's sumdb/note rejects more than 100 too).
MAX_SIGNATURES = 100

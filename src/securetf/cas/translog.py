"""The CAS's transparency log as the world reads it: signed checkpoints, entries, proofs,
tlog-tiles.

The log key is a file ``log.key`` next to the audit key (:mod:`securetf.cas.identity`; to
be sealed to the TEE: #15); its origin and the audit key's endorsement of it are in
:mod:`securetf.protocol.logkey`. Every read here is anonymous and bounded
(:data:`MAX_ENTRIES`, one tile): the log holds only what policies publish.
"""

from __future__ import annotations

from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    Checkpoint,
    Ed25519Signer,
    LogTree,
    encode_bundle,
    sign_note,
)
from securetf.log._limits import TILE_HEIGHT, TILE_WIDTH
from securetf.log._tilepath import ENTRIES, Level

__all__ = ["LOG_KEY_FILE", "MAX_ENTRIES", "CasLog"]

LOG_KEY_FILE = "log.key"
#: Most entries one anonymous read returns (one entry bundle).
MAX_ENTRIES = TILE_WIDTH


class CasLog:
    """Reads of the log behind ``tree``, and checkpoints signed by ``signer``."""

    def __init__(self, tree: LogTree, signer: Ed25519Signer) -> None:
        self._tree = tree
        self._signer = signer

    @property
    def origin(self) -> str:
        return self._signer.name

    @property
    def vkey(self) -> str:
        return self._signer.verifier().vkey()

    def checkpoint(self) -> bytes:
        """The signed checkpoint of the tree as it is now."""
        size = self._tree.size()
        text = Checkpoint(self.origin, size, self._tree.root(size)).text()
        return sign_note(text, [self._signer])

    def entries(self, start: int, count: int) -> list[bytes]:
        if start < 0 or not 1 <= count <= MAX_ENTRIES:
            raise UsageError(f"entries: start >= 0 and 1 <= count <= {MAX_ENTRIES}")
        size = self._tree.size()
        if start >= size:
            raise NotFoundError(f"the log has {size} entries; there is no entry {start}")
        return self._tree.entries(start, min(size, start + count))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise UsageError(f"an inclusion proof needs 0 <= index < size, not {index}, {size}")
        return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise UsageError(f"a consistency proof needs 0 < from <= to, not {size1}, {size2}")
        return self._tree.consistency_proof(size1, size2)

    def tile(self, level: Level, index: int, width: int) -> bytes:
        """A tlog-tiles tile (or entry bundle), if the tree has all of it by now."""
        start = index * TILE_WIDTH
        size = self._tree.size()
        if level == ENTRIES:
            if start + width > size:
                raise NotFoundError(f"the log has {size} entries: no such entry bundle yet")
            return encode_bundle(self._tree.entries(start, start + width))
        if not isinstance(level, int):
            raise UsageError(f"no tile level {level!r}")
        if start + width > size >> (TILE_HEIGHT * level):
            raise NotFoundError(f"the log has {size} entries: no such tile yet")
        return b"".join(self._tree.store.read_hashes(level, start, start + width))

    def _check_size(self, size: int) -> None:
        current = self._tree.size()
        if not 0 < size <= current:
            raise NotFoundError(f"the log has {current} entries; size {size} is not a tree of it")

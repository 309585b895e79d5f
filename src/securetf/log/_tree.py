"""The log's tree: append entries, and give roots and proofs at any size it has had."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from securetf.errors import UsageError
from securetf.log._errors import ProofError
from securetf.log._hashing import leaf_hash
from securetf.log._limits import MAX_ENTRY_SIZE, TILE_HEIGHT, TILE_WIDTH
from securetf.log._proofs import (
    FullTiles,
    SubtreeHashes,
    consistency_proof,
    inclusion_proof,
    tile_root,
)
from securetf.log._store import LogStore, StoredHash

__all__ = ["LogTree", "StoreTiles"]


class StoreTiles:
    """The tiles of a store, as :class:`SubtreeHashes` reads them."""

    def __init__(self, store: LogStore, *, full_tiles: FullTiles | None = None) -> None:
        """``full_tiles``: full tiles kept across reads (a long-lived reader's), used only
        where the store's own parent hashes commit to them (:class:`FullTiles`)."""
        self._store = store
        self._full = full_tiles

    def tile_hashes(self, level: int, index: int, width: int) -> Sequence[bytes]:
        start = index * TILE_WIDTH
        return self._store.read_hashes(level, start, start + width)


class LogTree:
    """An append-only RFC 9162 Merkle tree over a :class:`LogStore`.

    It keeps nothing in memory between calls: several processes may share one store,
    and an append that loses the race raises :class:`AppendConflictError`.
    """

    def __init__(self, store: LogStore, *, full_tiles: FullTiles | None = None) -> None:
        """``full_tiles``: full tiles kept across reads (a long-lived reader's), used only
        where the store's own parent hashes commit to them (:class:`FullTiles`)."""
        self._store = store
        self._full = full_tiles

    @property
    def store(self) -> LogStore:
        return self._store

    def size(self) -> int:
        return self._store.size()

    def append(self, entry: bytes) -> int:
        """Add one entry; return its index."""
        return self.extend([entry])

    def extend(self, entries: Sequence[bytes]) -> int:
        """Add ``entries`` in one atomic step; return the index of the first."""
        for i, entry in enumerate(entries):
            if len(entry) > MAX_ENTRY_SIZE:
                raise UsageError(
                    f"entry {i} is {len(entry)} bytes; a log entry holds at most "
                    f"{MAX_ENTRY_SIZE} (tlog-tiles entry bundles use 16-bit lengths)"
                )
        old_size = self._store.size()
        if entries:
            hashes = _new_hashes(self._store, old_size, [leaf_hash(e) for e in entries])
            self._store.append(old_size, entries, hashes)
        return old_size

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of ``size`` entries (default: all of them)."""
        return self._hashes(self.size() if size is None else size).root()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(self._hashes(size), index)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        if size1 == size2:
            self._hashes(size2)  # checks the size
            return []
        return consistency_proof(self._hashes(size2), size1)

    def entries(self, start: int, end: int) -> list[bytes]:
        return self._store.read_entries(start, end)

    def tile(self, level: int, index: int, size: int) -> bytes:
        """Tile ``index`` at ``level`` as the tree of ``size`` has it (tlog-tiles bytes)."""
        self._check_size(size)
        count = size >> (TILE_HEIGHT * level)
        width = min(TILE_WIDTH, count - index * TILE_WIDTH)
        if width <= 0:
            raise ProofError(f"the tree of {size} has no tile {level}/{index}")
        start = index * TILE_WIDTH
        return b"".join(self._store.read_hashes(level, start, start + width))

    def at(self, size: int) -> SubtreeHashes:
        """The tree of ``size`` entries, for several roots and proofs of it that read and
        hash each tile once (``root()``; :func:`inclusion_proof`, :func:`consistency_proof`
        of :mod:`securetf.log._proofs`)."""
        return self._hashes(size)

    @contextlib.contextmanager
    def reading(self) -> Iterator[LogTree]:
        """The tree for several reads at once: on one database connection when the store
        has them (:meth:`securetf.log.sql.SqlLogStore.reading`), else this tree."""
        opener: Callable[[], AbstractContextManager[LogStore]] | None
        opener = getattr(self._store, "reading", None)
        if opener is None:
            yield self
            return
        with opener() as store:
            yield LogTree(store, full_tiles=self._full)

    def latest(self) -> SubtreeHashes:
        """The tree as it is now (:meth:`at` its current size, with one size read)."""
        return SubtreeHashes(StoreTiles(self._store), self._store.size(), self._full)

    def _hashes(self, size: int) -> SubtreeHashes:
        self._check_size(size)
        return SubtreeHashes(StoreTiles(self._store), size, self._full)

    def _check_size(self, size: int) -> None:
        current = self._store.size()
        if not 0 <= size <= current:
            raise ProofError(f"the log has {current} entries; it never had {size}")


def _new_hashes(store: LogStore, old_size: int, leaves: list[bytes]) -> list[StoredHash]:
    """The rows that appending ``leaves`` to a tree of ``old_size`` adds: the leaf hashes,
    and at each level above, the roots of the tiles they complete."""
    out: list[StoredHash] = []
    level, start, new = 0, old_size, leaves
    while new:
        out.extend((level, start + i, h) for i, h in enumerate(new))
        first, done = start // TILE_WIDTH, (start + len(new)) // TILE_WIDTH
        if first == done:
            break
        edge = first * TILE_WIDTH
        row = store.read_hashes(level, edge, start) + new if start > edge else new
        new = [tile_root(row[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]) for i in range(done - first)]
        level, start = level + 1, first
    return out

"""The log's tree: append entries, and give roots and proofs at any size it has had."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from securetf.errors import UsageError
from securetf.log._edge import Edge, Edges, build_edge, extend_edge
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

    Several processes may share one store, and an append that loses the race raises
    :class:`AppendConflictError`. What a long-lived tree keeps in memory between calls is
    used only where the store commits to it.
    """

    def __init__(
        self, store: LogStore, *, full_tiles: FullTiles | None = None, edges: Edges | None = None
    ) -> None:
        """``full_tiles``: full tiles kept across reads (a long-lived reader's), used only
        where the store's own parent hashes commit to them (:class:`FullTiles`).
        ``edges``: the tree's right edge kept across appends and reads, on a store that
        keeps roots (``tip``), used only where the store's stored root commits to it
        (:mod:`securetf.log._edge`); each append then stores its tree's root."""
        self._store = store
        self._full = full_tiles
        self._edges = edges if edges is not None and hasattr(store, "tip") else None
        #: The edge of the tree after this tree's last append (with edges kept).
        self.appended: Edge | None = None

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
        if self._edges is not None:
            return self._extend_edge(entries, self._edges)
        old_size = self._store.size()
        if entries:
            hashes = _new_hashes(self._store, old_size, [leaf_hash(e) for e in entries])
            self._store.append(old_size, entries, hashes)
        return old_size

    def _extend_edge(self, entries: Sequence[bytes], edges: Edges) -> int:
        """:meth:`extend` from the kept edge the store's root commits to (else the edge
        read from the store's rows), storing the new tree's root with its rows."""
        old_size, edge = self._edge(edges)
        if entries:
            leaves = [leaf_hash(e) for e in entries]
            new, hashes = extend_edge(edge, leaves, self._full)
            self._store.append(old_size, entries, hashes, root=new.root)
            # Kept before the commit: used only once the store holds its root (the edge),
            # or hashes to the leaf of a tree the store's root commits to (the entries).
            edges.put(new)
            edges.keep_entries(old_size, entries)
            self.appended = new
        return old_size

    def _edge(self, edges: Edges) -> tuple[int, Edge]:
        """(the store's size, the edge of its tree): kept, or caught up from a smaller kept
        one, when the store's root of that size is the edge's; else read from the rows."""
        size, stored = self._store.tip()  # type: ignore[attr-defined]
        if stored is not None and stored[0] == size:
            if (edge := edges.get(size, stored[1])) is not None:
                return size, edge
            if (older := edges.below(size)) is not None:
                rows = self._store.read_hashes(0, older.size, size)
                edge = extend_edge(older, rows)[0]
                if edge.root == stored[1]:
                    edges.put(edge)
                    return size, edge
        edge = build_edge(SubtreeHashes(StoreTiles(self._store), size, self._full))
        edges.put(edge)
        return size, edge

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

    def entry_in(self, tree: SubtreeHashes, index: int) -> bytes:
        """Entry ``index`` of ``tree`` (a tree of this store): a kept one if it hashes to
        the tree's leaf, else the store's."""
        if self._edges is not None:
            kept = self._edges.entry(index)
            if kept is not None and leaf_hash(kept) == tree.node(0, index):
                return kept
        entry = self._store.read_entries(index, index + 1)[0]
        if self._edges is not None:
            self._edges.keep_entries(index, [entry])
        return entry

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
            yield LogTree(store, full_tiles=self._full, edges=self._edges)

    @contextlib.contextmanager
    def committed(self, index: int) -> Iterator[tuple[LogTree, SubtreeHashes] | None]:
        """The largest tree this process's own transactions committed that extends the one
        committed with entry ``index`` (so holds it), and this log to read it with: the
        store is opened only if a read is needed (a full tile or an entry not kept).
        None if no such tree is kept (no edges, another process appended it, forgotten)."""
        edge = self._edges.committed(index) if self._edges is not None else None
        if edge is None or edge.size <= index:
            yield None
            return
        with contextlib.ExitStack() as stack:
            log = LogTree(_OnDemand(self, stack), full_tiles=self._full, edges=self._edges)
            tiles = StoreTiles(log.store)
            yield log, SubtreeHashes(tiles, edge.size, self._full, edge.nodes, edge.root)

    def latest(self) -> SubtreeHashes:
        """The tree as it is now (:meth:`at` its current size, with one size read); with
        kept edges, its partial tiles from the edge the store's root commits to."""
        if self._edges is not None:
            size, edge = self._edge(self._edges)
            return SubtreeHashes(StoreTiles(self._store), size, self._full, edge.nodes, edge.root)
        return SubtreeHashes(StoreTiles(self._store), self._store.size(), self._full)

    def _hashes(self, size: int) -> SubtreeHashes:
        self._check_size(size)
        return SubtreeHashes(StoreTiles(self._store), size, self._full)

    def _check_size(self, size: int) -> None:
        current = self._store.size()
        if not 0 <= size <= current:
            raise ProofError(f"the log has {current} entries; it never had {size}")


class _OnDemand:
    """The store of ``tree`` for reads, opened (:meth:`LogTree.reading`) on the first."""

    def __init__(self, tree: LogTree, stack: contextlib.ExitStack[bool | None]) -> None:
        self._tree = tree
        self._stack = stack
        self._store: LogStore | None = None

    def _opened(self) -> LogStore:
        if self._store is None:
            self._store = self._stack.enter_context(self._tree.reading()).store
        return self._store

    def size(self) -> int:
        return self._opened().size()

    def tip(self) -> tuple[int, tuple[int, bytes] | None]:
        return self._opened().tip()  # type: ignore[attr-defined, no-any-return]

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        return self._opened().read_hashes(level, start, end)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return self._opened().read_entries(start, end)

    def append(
        self,
        old_size: int,
        entries: Sequence[bytes],
        hashes: Sequence[StoredHash],
        root: bytes | None = None,
    ) -> None:
        raise ProofError("a committed tree is read, never appended to")


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

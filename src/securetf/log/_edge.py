"""The tree's right edge kept in memory between reads and appends, used only where the
store's own stored root commits to it.

An :class:`Edge` of the tree of ``size`` entries holds every node inside its partial tiles
(each level's partial-tile rows and the complete subtrees between tile levels) and the
tree's root. With it, and the full tiles (:class:`FullTiles`, checked against their
parents, which lie in the edge or in full tiles above), the tree's root and its proofs
need neither a partial-tile read nor the hashing of partial tiles.

A writer that keeps edges (the CAS) stores each new tree's root beside its rows
(``tlog_roots``, :mod:`.sql`) and extends its edge by the leaves it appends. A kept edge is
used only when the store's root of that size equals the edge's root: the root commits to
every hash of the tree, so the edge is then exactly the tree the store holds. Anything
else (another writer appended, a database put back or edited, a store without roots)
catches up from the rows the store holds past the edge, checked against the stored root
again, or is rebuilt from the rows: a kept edge never outlives the store's commitment.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from securetf.log._hashing import EMPTY_ROOT
from securetf.log._limits import TILE_HEIGHT, TILE_WIDTH
from securetf.log._proofs import FullTiles, SubtreeHashes, _node
from securetf.log._store import StoredHash

__all__ = ["Edge", "Edges", "build_edge", "extend_edge"]

#: Most rows a kept edge catches up by before it is rebuilt from the store instead.
CATCH_UP = 4 * TILE_WIDTH

Node = tuple[int, int]


@dataclass(frozen=True)
class Edge:
    """The partial tiles of the tree of ``size``: ``nodes`` maps (height, index) to the
    hash of each complete subtree inside them (never changed once built). Edges of one
    ``lineage`` were extended from one another: each larger one's tree extends the
    smaller one's."""

    size: int
    root: bytes
    nodes: Mapping[Node, bytes]
    lineage: int = 0


_lineages = itertools.count(1)


def build_edge(tree: SubtreeHashes) -> Edge:
    """The edge of ``tree``, read (one read per partial tile) and hashed from its source."""
    size = tree.size
    nodes: dict[Node, bytes] = {}
    level = 0
    while (count := size >> (TILE_HEIGHT * level)) > 0:
        base = TILE_HEIGHT * level
        first = count // TILE_WIDTH * TILE_WIDTH
        for i in range(first, count):
            nodes[(base, i)] = tree.node(base, i)
        _hash_new(nodes, base, first, count)
        level += 1
    return Edge(size, _root(size, nodes), nodes, next(_lineages))


def extend_edge(
    edge: Edge, leaves: Sequence[bytes], full: FullTiles | None = None
) -> tuple[Edge, list[StoredHash]]:
    """The edge after appending ``leaves`` (leaf hashes), and the rows the store gets for
    them: the leaf hashes and, at each level above, the roots of the tiles they complete
    (what :func:`securetf.log._tree._new_hashes` computes, without reading the store).
    Tiles completed here go to ``full`` with their root."""
    nodes = dict(edge.nodes)
    out: list[StoredHash] = []
    level, start, new = 0, edge.size, list(leaves)
    while new:
        base, end = TILE_HEIGHT * level, start + len(new)
        for i, value in enumerate(new):
            nodes[(base, start + i)] = value
            out.append((level, start + i, value))
        _hash_new(nodes, base, start, end)
        first, done = start // TILE_WIDTH, end // TILE_WIDTH
        new = []
        for tile in range(first, done):
            top = base + TILE_HEIGHT - 1
            root = _node(nodes[(top, 2 * tile)], nodes[(top, 2 * tile + 1)])
            new.append(root)
            inside = _pop_tile(nodes, base, tile)
            if full is not None:
                rows = [inside.pop((base, tile * TILE_WIDTH + i)) for i in range(TILE_WIDTH)]
                full.put(level, tile, (rows, root, inside))
        level, start = level + 1, first
    size = edge.size + len(leaves)
    return Edge(size, _root(size, nodes), nodes, edge.lineage), out


class Edges:
    """The last few edges a process built or extended, by size, and the entries it
    appended or read last (any thread). An entry kept here is served only when it hashes
    to the leaf of the tree being read (:meth:`securetf.log.LogTree.entry_in`)."""

    def __init__(self, limit: int = 8, entries: int = 1024) -> None:
        self._limit = limit
        self._edges: dict[int, Edge] = {}
        self._lock = threading.Lock()
        self._entry_limit = entries
        self._entries: OrderedDict[int, bytes] = OrderedDict()
        # What this process's own transactions committed: the largest edge of each
        # lineage, and the lineage each recent entry was committed in.
        self._committed: dict[int, Edge] = {}
        self._lineage_of: OrderedDict[int, int] = OrderedDict()

    def commit(self, edge: Edge, first: int) -> None:
        """``edge`` is the tree a transaction of this process committed, with its entries
        ``first``..``edge.size``-1 (the database held its root at that commit)."""
        with self._lock:
            kept = self._committed.get(edge.lineage)
            if kept is None or kept.size < edge.size:
                self._committed[edge.lineage] = edge
            for index in range(first, edge.size):
                self._lineage_of[index] = edge.lineage
                self._lineage_of.move_to_end(index)
            while len(self._lineage_of) > self._entry_limit:
                self._lineage_of.popitem(last=False)
            if len(self._committed) > 2:  # lineages no kept entry belongs to any more
                live = set(self._lineage_of.values())
                for lineage in [n for n in self._committed if n not in live]:
                    del self._committed[lineage]

    def committed(self, index: int) -> Edge | None:
        """The largest tree committed by this process that extends the one the
        transaction which committed entry ``index`` made (None if no recent one did)."""
        with self._lock:
            lineage = self._lineage_of.get(index)
            return None if lineage is None else self._committed.get(lineage)

    def entry(self, index: int) -> bytes | None:
        """A kept entry; a hit keeps it longest (an entry every answer names, as a policy
        version's, stays however many newer ones are appended)."""
        with self._lock:
            entry = self._entries.get(index)
            if entry is not None:
                self._entries.move_to_end(index)
            return entry

    def keep_entries(self, start: int, entries: Sequence[bytes]) -> None:
        with self._lock:
            for i, entry in enumerate(entries):
                self._entries[start + i] = entry
                self._entries.move_to_end(start + i)
            while len(self._entries) > self._entry_limit:
                self._entries.popitem(last=False)

    def get(self, size: int, root: bytes) -> Edge | None:
        """The kept edge of ``size`` if its root is ``root`` (the store's)."""
        edge = self._edges.get(size)
        return edge if edge is not None and edge.root == root else None

    def below(self, size: int) -> Edge | None:
        """The largest kept edge of a tree smaller than ``size``, within :data:`CATCH_UP`."""
        with self._lock:
            sizes = [s for s in self._edges if size - CATCH_UP <= s < size]
            return self._edges[max(sizes)] if sizes else None

    def put(self, edge: Edge) -> None:
        with self._lock:
            self._edges[edge.size] = edge
            while len(self._edges) > self._limit:
                del self._edges[min(self._edges)]


def _hash_new(nodes: dict[Node, bytes], base: int, start: int, end: int) -> None:
    """Hash into ``nodes`` every complete subtree between tile levels ``base`` and
    ``base + 8`` that rows ``start``..``end``-1 at height ``base`` complete (the rows
    before ``start`` in their tile and the subtrees over them are in ``nodes``)."""
    for shift in range(1, TILE_HEIGHT):
        height = base + shift
        for i in range(start >> shift, end >> shift):
            if (height, i) not in nodes:
                nodes[(height, i)] = _node(
                    nodes[(height - 1, 2 * i)], nodes[(height - 1, 2 * i + 1)]
                )


def _pop_tile(nodes: dict[Node, bytes], base: int, tile: int) -> dict[Node, bytes]:
    """Take the rows and inner nodes of the now full ``tile`` at height ``base`` out of
    the edge."""
    out = {}
    for shift in range(TILE_HEIGHT):
        width = TILE_WIDTH >> shift
        for i in range(tile * width, (tile + 1) * width):
            out[(base + shift, i)] = nodes.pop((base + shift, i))
    return out


def _root(size: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH of the tree of ``size``: its complete subtrees for the set bits of ``size``,
    which all lie in partial tiles, folded from the right."""
    heights = [h for h in range(size.bit_length()) if size >> h & 1]
    if not heights:
        return EMPTY_ROOT
    acc = nodes[(heights[0], (size >> heights[0]) - 1)]
    for height in heights[1:]:
        acc = _node(nodes[(height, (size >> height) - 1)], acc)
    return acc

"""Roots and proofs of a tree of a given size, computed from its tiles (RFC 9162 2.1).

A tile at level L holds the hashes of complete subtrees of 256**L leaves (tlog-tiles);
everything between two tile levels is hashed again from the level below. The source of
the tiles is a :class:`TileSource`: the log's own store, a tile directory, a mirror.
Nothing here trusts what it reads: a client verifies what it builds against a signed
root (:mod:`._verify`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol

from securetf.log._errors import ProofError
from securetf.log._hashing import EMPTY_ROOT, node_hash
from securetf.log._limits import HASH_SIZE, TILE_HEIGHT, TILE_WIDTH

__all__ = [
    "FullTiles",
    "SubtreeHashes",
    "TileSource",
    "consistency_proof",
    "inclusion_proof",
    "tile_root",
]


class TileSource(Protocol):
    def tile_hashes(self, level: int, index: int, width: int) -> Sequence[bytes]:
        """The ``width`` hashes of tile ``index`` at ``level`` as a tree of some size has
        them (a partial tile when ``width`` < 256)."""
        ...


def tile_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a complete subtree from its power-of-two row of hashes."""
    row = list(hashes)
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


#: A kept full tile: its hashes, its root, the nodes inside it.
_Kept = tuple[Sequence[bytes], bytes, dict[tuple[int, int], bytes]]


class FullTiles:
    """Full tiles kept across reads of one log (a long-lived reader such as the CAS's),
    each with its root, at most ``limit`` of them, least recently used dropped first.

    A kept tile is used only when the tree being read holds that same root one level up:
    what it gives is then exactly what the source's own parent hash commits to, so a
    source that changed beneath it (a database put back) is read again, never papered
    over with what it held before.
    """

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._tiles: OrderedDict[tuple[int, int], _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, level: int, index: int, parent: bytes) -> _Kept | None:
        """The tile and the nodes inside it, if kept with the root ``parent``."""
        with self._lock:
            kept = self._tiles.get((level, index))
            if kept is None or kept[1] != parent:
                return None
            self._tiles.move_to_end((level, index))
            return kept

    def put(self, level: int, index: int, kept: _Kept) -> None:
        with self._lock:
            self._tiles[(level, index)] = kept
            self._tiles.move_to_end((level, index))
            while len(self._tiles) > self._limit:
                self._tiles.popitem(last=False)


class SubtreeHashes:
    """The Merkle tree hashes of a tree of ``size`` leaves, read from ``source``.

    Each tile is read once, at the width the tree of ``size`` gives it; the rest is
    hashed (at most 127 hashes per tile per node). With ``full``, full tiles whose parent
    hash the tree holds come from there (see :class:`FullTiles`). With ``edge``, the nodes
    of the tree's partial tiles come from there: the caller has checked that they are this
    tree's (:mod:`._edge`).
    """

    def __init__(
        self,
        source: TileSource,
        size: int,
        full: FullTiles | None = None,
        edge: Mapping[tuple[int, int], bytes] | None = None,
        root: bytes | None = None,
    ) -> None:
        """``root``: the tree's root as ``edge`` gives it (:class:`securetf.log._edge.Edge`),
        else hashed from the nodes when asked."""
        self._source = source
        self._full = full
        self._size = size
        self._edge = edge
        self._root = root
        self._tiles: dict[tuple[int, int], Sequence[bytes]] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}
        # The nodes inside each kept full tile this tree uses, by (level, tile): looked up
        # where they are, not copied (a tile holds 254 of them).
        self._inner: dict[tuple[int, int], Mapping[tuple[int, int], bytes]] = {}

    @property
    def size(self) -> int:
        return self._size

    def node(self, height: int, index: int) -> bytes:
        """MTH of the complete subtree of 2**height leaves starting at index * 2**height."""
        key = (height, index)
        if (cached := self._nodes.get(key)) is not None:
            return cached
        if self._edge is not None and (kept := self._edge.get(key)) is not None:
            return kept
        level, shift = divmod(height, TILE_HEIGHT)
        if shift == 0:
            value = self._tile(level, index // TILE_WIDTH)[index % TILE_WIDTH]
        elif (inner := self._inner.get((level, (index << shift) // TILE_WIDTH))) is not None and (
            kept_inner := inner.get(key)
        ) is not None:
            return kept_inner
        else:
            value = node_hash(
                self.node(height - 1, 2 * index), self.node(height - 1, 2 * index + 1)
            )
        self._nodes[key] = value
        return value

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range of the RFC's recursion: ``lo`` is a multiple of the
        largest power of two not above ``hi - lo``."""
        n = hi - lo
        if n & (n - 1) == 0:
            height = n.bit_length() - 1
            return self.node(height, lo >> height)
        k = _split(n)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def root(self) -> bytes:
        if self._root is None:
            self._root = EMPTY_ROOT if self._size == 0 else self.mth(0, self._size)
        return self._root

    def _tile(self, level: int, index: int) -> Sequence[bytes]:
        key = (level, index)
        if (cached := self._tiles.get(key)) is not None:
            return cached
        width = min(TILE_WIDTH, (self._size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH)
        if width <= 0:
            raise ProofError(f"tile {level}/{index} lies beyond the tree of {self._size}")
        parent = None
        if self._full is not None and width == TILE_WIDTH:
            # The tree holds this tile's root one level up (its tile completed it).
            parent = self.node(TILE_HEIGHT * (level + 1), index)
            kept = self._full.get(level, index, parent)
            if kept is not None:
                self._tiles[key] = kept[0]
                self._inner[key] = kept[2]  # after what the tree has (see node)
                return kept[0]
        hashes = self._source.tile_hashes(level, index, width)
        if len(hashes) != width or any(len(h) != HASH_SIZE for h in hashes):
            raise ProofError(f"tile {level}/{index} does not hold {width} SHA-256 hashes")
        self._tiles[key] = hashes
        inside = self._hash_inside(level, index, hashes)
        if self._full is not None and parent is not None:
            top = TILE_HEIGHT * (level + 1) - 1
            left, right = inside.get((top, 2 * index)), inside.get((top, 2 * index + 1))
            # Kept only if it hashes to the parent the tree holds.
            if left is not None and right is not None and _node(left, right) == parent:
                self._full.put(level, index, (hashes, parent, inside))
        return hashes

    def _hash_inside(
        self, level: int, index: int, hashes: Sequence[bytes]
    ) -> dict[tuple[int, int], bytes]:
        """Every complete subtree inside a tile, hashed row by row in one pass (the nodes
        between tile levels that proofs ask for; cheaper than one recursive call each)."""
        row, height = list(hashes), TILE_HEIGHT * level
        first = index * TILE_WIDTH
        inside: dict[tuple[int, int], bytes] = {}
        while len(row) > 1 and height + 1 < TILE_HEIGHT * (level + 1):
            row = [_node(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
            height, first = height + 1, first // 2
            for i, value in enumerate(row):
                inside[(height, first + i)] = value
        for node, value in inside.items():
            self._nodes.setdefault(node, value)
        return inside


def inclusion_proof(hashes: SubtreeHashes, index: int) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf side first."""
    if not 0 <= index < hashes.size:
        raise ProofError(f"entry {index} is not in the tree of {hashes.size}")
    return _path(hashes, 0, index)


def consistency_proof(hashes: SubtreeHashes, size1: int) -> list[bytes]:
    """PROOF(size1, D[0:size]) = SUBPROOF(size1, D[0:size], true) (RFC 9162 2.1.4.1)."""
    if not 0 < size1 <= hashes.size:
        raise ProofError(f"no consistency proof from {size1} to {hashes.size} entries")
    if size1 == hashes.size:
        return []
    # The largest complete subtree the tree of size1 ends with: its path in the larger
    # tree, after the subtree's own hash unless it is the whole smaller tree.
    height = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> height
    proof = _path(hashes, height, index)
    return proof if index == 0 else [hashes.node(height, index), *proof]


def _path(hashes: SubtreeHashes, height: int, index: int) -> list[bytes]:
    """The hashes that lead from the complete subtree ``(height, index)`` to the root,
    lowest first: the RFC's recursion unrolled. Below the level where the subtree's path
    and the tree's last leaf's part, each sibling is complete, or (on the right) the ragged
    rest of the tree; above it, only the left siblings are on the path."""
    size = hashes.size
    last = (size - 1) >> height
    inner = (index ^ last).bit_length()
    proof = []
    for shift in range(inner):
        level, sibling = height + shift, (index >> shift) ^ 1
        lo = sibling << level
        if lo + (1 << level) <= size:
            proof.append(hashes.node(level, sibling))
        else:
            proof.append(hashes.mth(lo, size))
    for shift in range(inner, last.bit_length()):
        if index >> shift & 1:
            proof.append(hashes.node(height + shift, (index >> shift) ^ 1))
    return proof


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()  # node_hash, inlined


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)

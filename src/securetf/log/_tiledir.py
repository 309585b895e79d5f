"""A log as static files (tlog-tiles), and proofs built back from such files.

:func:`write_tiles` lays out ``checkpoint``, ``tile/<L>/...`` and ``tile/entries/...``
under a directory that any static file server can mirror. :class:`TileClient` reads them
back through a ``fetch`` function (a directory, an HTTP mirror) and builds the same
proofs the log would give; it trusts nothing it fetches: what it returns is checked
against a checkpoint the caller verified.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from securetf.crypto import constant_time_equal
from securetf.errors import NotFoundError, UsageError
from securetf.log._checkpoint import Checkpoint
from securetf.log._errors import ProofError
from securetf.log._hashing import EMPTY_ROOT, leaf_hash
from securetf.log._limits import HASH_SIZE, MAX_ENTRY_SIZE, MAX_NOTE_SIZE, TILE_WIDTH
from securetf.log._proofs import SubtreeHashes, consistency_proof, inclusion_proof
from securetf.log._tilepath import (
    ENTRIES,
    decode_bundle,
    encode_bundle,
    parse_tile_path,
    tile_path,
    tiles_for_size,
)
from securetf.log._tree import LogTree
from securetf.log._verify import verify_consistency, verify_inclusion

__all__ = [
    "CHECKPOINT_PATH",
    "Fetch",
    "TileClient",
    "directory_fetch",
    "write_file",
    "write_tiles",
]

CHECKPOINT_PATH = "checkpoint"

#: fetch(path, limit): the bytes at ``path`` (at most ``limit``, else an error);
#: :class:`NotFoundError` if there is nothing there.
Fetch = Callable[[str, int], bytes]


def write_tiles(tree: LogTree, size: int, directory: Path, checkpoint: bytes) -> int:
    """Write the tiles and entry bundles of the tree of ``size``, then ``checkpoint`` (a
    signed note for that size), under ``directory``; return how many files were written.

    Files already there are kept (they never change); partial tiles of earlier sizes
    stay (tlog-tiles: a checkpoint's partial tiles must stay available). The checkpoint
    goes last, so a reader never sees one whose tiles are missing.
    """
    written = 0
    for level, index, width in tiles_for_size(size):
        written += _write_once(
            directory, tile_path(level, index, width), tree.tile(level, index, size)
        )
        if level == 0:
            start = index * TILE_WIDTH
            bundle = encode_bundle(tree.entries(start, start + width))
            written += _write_once(directory, tile_path(ENTRIES, index, width), bundle)
    _write(directory / CHECKPOINT_PATH, checkpoint)
    return written + 1


def directory_fetch(root: Path) -> Fetch:
    """A :data:`Fetch` that reads tile paths and the checkpoint under ``root`` only."""

    def fetch(path: str, limit: int) -> bytes:
        if path != CHECKPOINT_PATH:
            parse_tile_path(path)  # canonical digits only: no "..", no absolute path
        try:
            with open(root / path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{path} is not in {root}") from None
        if len(data) > limit:
            raise ProofError(f"{path} in {root} is larger than {limit} bytes")
        return data

    return fetch


class TileClient:
    """Proofs and entries of a tiled log, from whatever ``fetch`` reaches."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    def checkpoint(self) -> bytes:
        """The checkpoint note as served: verify it (:func:`verify_checkpoint`) first."""
        return self._fetch(CHECKPOINT_PATH, MAX_NOTE_SIZE)

    def tile_hashes(self, level: int, index: int, width: int) -> Sequence[bytes]:
        try:
            data = self._fetch(tile_path(level, index, width), width * HASH_SIZE)
        except NotFoundError:
            if width == TILE_WIDTH:
                raise
            # A log may delete a partial tile once the full one exists; its start is the same.
            data = self._fetch(tile_path(level, index), TILE_WIDTH * HASH_SIZE)[: width * HASH_SIZE]
        if len(data) != width * HASH_SIZE:
            raise ProofError(f"tile {level}/{index} is {len(data)} bytes, not {width} hashes")
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(SubtreeHashes(self, size), index)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        if size1 == size2:
            return []
        return consistency_proof(SubtreeHashes(self, size2), size1)

    def entry(self, index: int, checkpoint: Checkpoint) -> bytes:
        """Entry ``index``, proven to be in the tree ``checkpoint`` signs."""
        if not 0 <= index < checkpoint.size:
            raise UsageError(f"entry {index} is not in the tree of {checkpoint.size}")
        bundle_index, offset = divmod(index, TILE_WIDTH)
        width = min(TILE_WIDTH, checkpoint.size - bundle_index * TILE_WIDTH)
        limit = width * (2 + MAX_ENTRY_SIZE)
        path = tile_path(ENTRIES, bundle_index, width)
        try:
            data = self._fetch(path, limit)
        except NotFoundError:
            if width == TILE_WIDTH:
                raise
            full = self._fetch(tile_path(ENTRIES, bundle_index), TILE_WIDTH * (2 + MAX_ENTRY_SIZE))
            data = encode_bundle(decode_bundle(full, TILE_WIDTH)[:width])
        entry = decode_bundle(data, width)[offset]
        proof = self.inclusion_proof(index, checkpoint.size)
        verify_inclusion(leaf_hash(entry), index, checkpoint.size, proof, checkpoint.root)
        return entry

    def check_consistency(self, old: Checkpoint, new: Checkpoint) -> None:
        """Return if the tree ``new`` extends ``old`` (both verified checkpoints of one log);
        raise :class:`ProofError` (:class:`ForkError`, :class:`LogRollbackError`) if not."""
        verify_extension(old, new, lambda: self.consistency_proof(old.size, new.size))


def verify_extension(
    old: Checkpoint, new: Checkpoint, proof: Callable[[], Sequence[bytes]]
) -> None:
    """Return if the tree ``new`` extends ``old`` (both verified checkpoints of one log),
    with the consistency proof ``proof()`` gives (asked only when one is needed); raise
    :class:`ProofError` (:class:`ForkError`, :class:`LogRollbackError`) if not."""
    if old.origin != new.origin:
        raise UsageError(f"checkpoints of two logs: {old.origin!r} and {new.origin!r}")
    if old.size == 0:
        # Everything extends the empty tree, whose root is fixed.
        if not constant_time_equal(old.root, EMPTY_ROOT):
            raise ProofError("a checkpoint of the empty tree has a root other than HASH()")
        return
    hashes = proof() if old.size < new.size else []
    verify_consistency(old.size, new.size, hashes, old.root, new.root)


def write_file(directory: Path, path: str, data: bytes) -> int:
    """Write ``data`` at the tile path (or the checkpoint) ``path`` under ``directory``,
    atomically; a tile already there is kept (tiles never change). Returns 1 if written."""
    if path == CHECKPOINT_PATH:
        _write(directory / path, data)
        return 1
    parse_tile_path(path)  # canonical digits only: no "..", no absolute path
    return _write_once(directory, path, data)


def _write_once(directory: Path, path: str, data: bytes) -> int:
    target = directory / path
    # Tiles and bundles, partial ones too, never change once written: the first W hashes
    # of a tile are the same at every size that has them.
    if target.exists() and target.stat().st_size == len(data):
        return 0
    _write(target, data)
    return 1


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise

"""Sealing a directory tree into a new volume, and unsealing one back.

Both build their result under a hidden temporary name beside the destination and rename
it into place only when complete, so a failure leaves no partial volume and no partial
plaintext behind.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from securetf.crypto import random_bytes
from securetf.errors import Error, UsageError
from securetf.volume._keys import VolumeKey
from securetf.volume._settings import DEFAULT_CHUNK_SIZE, MODE_BITS
from securetf.volume._source import (
    Tree,
    open_given_file,
    open_root,
    open_source_file,
    scan_tree,
)
from securetf.volume._volume import Volume

Progress = Callable[[int], None]
_COPY_BLOCK = 1024 * 1024


def _temp_beside(dst: Path, what: str) -> Path:
    return dst.parent / f".{dst.name}.{what}-{random_bytes(6).hex()}"


def seal_tree(
    src: Path,
    dst: Path,
    key: VolumeKey,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    tree: Tree | None = None,
) -> str:
    """Seal the tree ``src`` into a new volume ``dst``; return the volume's tag.

    ``tree`` is ``scan_tree(src)`` when the caller has scanned it already (to size a
    progress bar), so the tree is walked once. Every file sealed is the one the scan
    found, reached without following a link (see :mod:`._source`).
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise UsageError(f"{dst} exists already; seal into a new path (nothing was changed)")
    if not dst.parent.is_dir():
        raise UsageError(f"the parent directory of {dst} does not exist")
    tree = tree if tree is not None else scan_tree(src)
    tmp = _temp_beside(dst, "sealing")
    try:
        with (
            open_root(src, tree) as root,
            Volume.create(tmp, key, chunk_size=chunk_size) as vol,
        ):
            for d in tree.dirs:
                vol.mkdir(d)
            for f in tree.files:
                _copy_in(vol, f.path, open_source_file(root, tree, f), progress)
            tag = vol.commit()
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tag


def _copy_in(vol: Volume, rel: str, fd: int, progress: Progress | None) -> None:
    """Stream the open file ``fd`` (closed here) into ``rel``, keeping its permissions."""
    with (
        open(fd, "rb", buffering=0) as src,
        vol.open_file(rel, "wb", file_mode=os.fstat(fd).st_mode) as out,
    ):
        _pump(src.readinto, out.write, progress)


def _pump(
    read_into: Callable[[bytearray], int | None],
    write: Callable[[memoryview], object],
    progress: Progress | None,
) -> None:
    buf = bytearray(_COPY_BLOCK)
    while n := read_into(buf):
        write(memoryview(buf)[:n])
        if progress:
            progress(n)


def put_file(vol: Volume, src_file: Path, dest: str) -> None:
    """Add or replace one file of a writable volume from a file on disk (streamed)."""
    _copy_in(vol, dest, open_given_file(Path(src_file)), None)


def unseal_tree(vol: Volume, out: Path, *, progress: Progress | None = None) -> None:
    """Write every file of ``vol`` under the new directory ``out``.

    On any error, including an integrity failure, nothing is left at ``out``. The new
    directory is private to its owner (mode 0700): it holds plaintext.
    """
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists already; unseal into a new path")
    if not out.parent.is_dir():
        raise UsageError(f"the parent directory of {out} does not exist")
    tmp = _temp_beside(out, "unsealing")
    try:
        tmp.mkdir(mode=0o700)
        try:
            _write_tree(vol, tmp, progress)
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if tmp.exists():  # say where plaintext stayed, never hide it
                raise Error(
                    f"unsealing into {out} failed and the partial plaintext in {tmp} could not "
                    "be removed: remove it by hand"
                ) from sys.exc_info()[1]
            raise
    except OSError as exc:
        raise Error(
            f"cannot write the plaintext to {out}: {exc.strerror}; nothing was left there"
        ) from exc


def _write_tree(vol: Volume, tmp: Path, progress: Progress | None) -> None:
    # Exactly 0o700: a directory inherits setgid from its parent, and its own
    # directories would inherit it in turn.
    os.chmod(tmp, 0o700)
    for d in vol.directories():
        (tmp / d).mkdir(parents=True, exist_ok=True)
    for info in vol.files():
        target = tmp / info.path
        with (
            vol.open_file(info.path, "rb") as src,
            open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst,
        ):
            _pump(src.readinto, dst.write, progress)
            os.fchmod(dst.fileno(), info.mode & MODE_BITS)


__all__ = ["put_file", "seal_tree", "unseal_tree"]

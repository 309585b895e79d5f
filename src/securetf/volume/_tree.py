"""Sealing a directory tree into a new volume, and unsealing one back.

Both build their result under a hidden temporary name beside the destination and rename
it into place only when complete, so a failure leaves no partial volume and no partial
plaintext behind.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from securetf.crypto import random_bytes
from securetf.errors import UsageError
from securetf.volume._keys import VolumeKey
from securetf.volume._settings import DEFAULT_CHUNK_SIZE, MODE_BITS
from securetf.volume._volume import Volume

Progress = Callable[[int], None]
#: A scanned tree: its directories, and its files as (path in the volume, path, size).
Tree = tuple[list[str], list[tuple[str, Path, int]]]
_COPY_BLOCK = 1024 * 1024


def scan_tree(src: Path) -> Tree:
    """The directories and regular files under ``src``, sorted; refuse anything else."""
    if not src.is_dir():
        what = "does not exist" if not src.exists() else "is not a directory"
        raise UsageError(f"source {src} {what}; seal takes a directory")
    dirs: list[str] = []
    files: list[tuple[str, Path, int]] = []
    for rel, full, st in _walk(src, ""):
        if stat.S_ISDIR(st.st_mode):
            dirs.append(rel)
        elif stat.S_ISREG(st.st_mode):
            files.append((rel, full, st.st_size))
        else:
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
            raise UsageError(f"{full} is a {kind}; a volume holds only directories and files")
    return dirs, files


def _walk(root: Path, prefix: str) -> Iterator[tuple[str, Path, os.stat_result]]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"cannot read directory {root}: {exc.strerror}") from exc
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        st = entry.stat(follow_symlinks=False)
        yield rel, Path(entry.path), st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), rel + "/")


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
    progress bar), so the tree is walked once.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise UsageError(f"{dst} exists already; seal into a new path (nothing was changed)")
    if not dst.parent.is_dir():
        raise UsageError(f"the parent directory of {dst} does not exist")
    dirs, files = tree if tree is not None else scan_tree(src)
    tmp = _temp_beside(dst, "sealing")
    try:
        with Volume.create(tmp, key, chunk_size=chunk_size) as vol:
            for d in dirs:
                vol.mkdir(d)
            for rel, full, _ in files:
                _copy_in(vol, rel, full, progress)
            tag = vol.commit()
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tag


def _copy_in(vol: Volume, rel: str, full: Path, progress: Progress | None) -> None:
    try:
        src = open(full, "rb")  # noqa: SIM115 - closed below, errors wrapped
    except OSError as exc:
        raise UsageError(f"cannot read {full}: {exc.strerror}") from exc
    with src, vol.open_file(rel, "wb", file_mode=os.fstat(src.fileno()).st_mode & MODE_BITS) as out:
        while block := src.read(_COPY_BLOCK):
            out.write(block)
            if progress:
                progress(len(block))


def put_file(vol: Volume, src_file: Path, dest: str) -> None:
    """Add or replace one file of a writable volume from a file on disk (streamed)."""
    if not Path(src_file).is_file():
        raise UsageError(f"{src_file} is not a regular file")
    _copy_in(vol, dest, Path(src_file), None)


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
    tmp.mkdir(mode=0o700)
    try:
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
                buf = bytearray(_COPY_BLOCK)
                while n := src.readinto(buf):
                    dst.write(memoryview(buf)[:n])
                    if progress:
                        progress(n)
                os.fchmod(dst.fileno(), info.mode & MODE_BITS)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["put_file", "scan_tree", "seal_tree", "unseal_tree"]

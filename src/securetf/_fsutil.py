"""Small file-system helpers shared by the parts: private files, atomic replacement."""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from pathlib import Path

from securetf._libc import load_libc
from securetf.errors import UsageError

__all__ = ["atomic_write", "fsync_dir", "read_file", "syncfs", "write_private_file"]


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data``; refuse an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists already; choose another path or remove it") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_file(path: Path, what: str) -> bytes:
    """Read a whole file; a missing or unreadable one is a :class:`UsageError` naming ``what``."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content.

    The temporary file has a name of its own (``mkstemp``), so threads or processes writing
    the same path at once never write into each other's copy.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


_libc: ctypes.CDLL | None = None


def syncfs(path: Path) -> None:
    """Flush every dirty page of the file system holding ``path`` (one call, not one per file)."""
    global _libc
    if _libc is None:
        _libc = load_libc()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)

"""The plaintext tree to seal, read without following links: a scan, then checked opens.

Whoever can write in the source tree may swap an entry between the scan and the copy,
hoping that seal (often run as root) reads a file from outside it. So the scan walks
directory descriptors, opening each directory with O_NOFOLLOW, and records each file's
identity (device and inode); the copy opens every file again the same way and refuses
one that is not the file scanned. The source directory itself is the one name followed
as given, and it too must still be the directory scanned.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from securetf.errors import UsageError

__all__ = ["SourceFile", "Tree", "open_given_file", "open_root", "open_source_file", "scan_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
#: O_NONBLOCK: a FIFO swapped in for a file must not make the open wait for a writer.
_FILE_FLAGS = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK
#: What an open meets when the entry it opens is no longer what the scan saw.
_SWAPPED = {errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.ENXIO}


@dataclass(frozen=True)
class SourceFile:
    """A regular file found by the scan: its path in the volume, and its identity."""

    path: str
    size: int
    dev: int
    ino: int


@dataclass(frozen=True)
class Tree:
    """A scanned source tree: its directories and regular files, in walk order."""

    root: Path
    dev: int
    ino: int
    dirs: tuple[str, ...]
    files: tuple[SourceFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def scan_tree(src: Path) -> Tree:
    """The directories and regular files under ``src``, sorted; refuse anything else."""
    src = Path(src)
    dirs: list[str] = []
    files: list[SourceFile] = []
    with _open_dir_named(src) as fd:
        st = os.fstat(fd)
        _walk(fd, src, "", dirs, files)
    return Tree(src, st.st_dev, st.st_ino, tuple(dirs), tuple(files))


@contextlib.contextmanager
def open_root(src: Path, tree: Tree) -> Iterator[int]:
    """A descriptor of the directory ``src``, refused unless it is the root ``tree`` scanned."""
    with _open_dir_named(src) as fd:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (tree.dev, tree.ino):
            raise _changed(src)
        yield fd


def open_source_file(root: int, tree: Tree, file: SourceFile) -> int:
    """Open the scanned ``file`` again below the descriptor ``root``, following no link;
    return its descriptor, or raise if what is there now is not the file scanned."""
    *parts, name = file.path.split("/")
    where = tree.root / file.path
    with contextlib.ExitStack() as stack:
        parent = root
        for part in parts:
            parent = _open_at(parent, part, _DIR_FLAGS, where)
            stack.callback(os.close, parent)
        fd = _open_at(parent, name, _FILE_FLAGS | os.O_NOFOLLOW, where)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (file.dev, file.ino):
        os.close(fd)
        raise _changed(where)
    return fd


def open_given_file(path: Path) -> int:
    """Open the regular file the user named (a link in its name is theirs to follow)."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file")
    return fd


def _walk(fd: int, where: Path, prefix: str, dirs: list[str], files: list[SourceFile]) -> None:
    try:
        with os.scandir(fd) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"cannot read directory {where}: {exc.strerror}") from exc
    for entry in entries:
        rel, full = prefix + entry.name, where / entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            dirs.append(rel)
            sub = _open_at(fd, entry.name, _DIR_FLAGS, full)
            try:
                _walk(sub, full, rel + "/", dirs, files)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            files.append(SourceFile(rel, st.st_size, st.st_dev, st.st_ino))
        else:
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
            raise UsageError(f"{full} is a {kind}; a volume holds only directories and files")


@contextlib.contextmanager
def _open_dir_named(src: Path) -> Iterator[int]:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        what = "does not exist" if exc.errno == errno.ENOENT else "is not a directory"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            what = f"cannot be read ({exc.strerror})"
        raise UsageError(f"source {src} {what}; seal takes a directory") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _open_at(parent: int, name: str, flags: int, where: Path) -> int:
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in _SWAPPED:
            raise _changed(where) from None
        raise UsageError(f"cannot read {where}: {exc.strerror}") from exc


def _changed(where: Path) -> UsageError:
    return UsageError(
        f"{where} changed while sealing (it is not what the scan found, or is now a link); "
        "make sure nothing changes the source tree during seal, then seal again"
    )

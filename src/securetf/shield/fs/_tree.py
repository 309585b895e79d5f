"""What the mount shows: attributes and directory listings of a volume's current state."""

from __future__ import annotations

import os
import stat
import time
from pathlib import PurePosixPath

from securetf.volume import Volume

#: The block size reported to programs (stdio and numpy size their buffers by it).
BLOCK_SIZE = 128 * 1024


def parent_of(path: str) -> str:
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent


class Tree:
    """Directory structure of the volume, cached until the next change to names."""

    def __init__(self, volume: Volume, owner: tuple[int, int] | None = None) -> None:
        self._volume = volume
        self._dirs: set[str] | None = None
        # The volume stores no owners: all of it belongs to the program (or to whoever
        # mounted it), so tools that check ownership (tempfile, Keras's cache) accept it.
        self.uid, self.gid = owner if owner is not None else (os.getuid(), os.getgid())
        self.started = time.time_ns()
        self.times: dict[str, tuple[int, int]] = {}  # path -> (atime, mtime) in ns

    def changed(self) -> None:
        self._dirs = None

    def is_dir(self, path: str) -> bool:
        if path == "":
            return True
        if self._dirs is None:
            self._dirs = set(self._volume.directories())
        return path in self._dirs

    def children(self, path: str, extra: list[str]) -> list[str]:
        """Names directly inside directory ``path`` (``extra``: files not yet in the state)."""
        prefix = path + "/" if path else ""
        names: set[str] = set()
        every = [f.path for f in self._volume.files()] + self._volume.directories() + extra
        for p in every:
            if p.startswith(prefix) and p != path:
                names.add(p[len(prefix) :].split("/", 1)[0])
        return sorted(names)

    def dir_attrs(self, path: str) -> dict[str, int]:
        return self._attrs(path, stat.S_IFDIR | 0o755, 0, nlink=2)

    def file_attrs(self, path: str, size: int, mode: int) -> dict[str, int]:
        return self._attrs(path, stat.S_IFREG | (mode & 0o7777), size, nlink=1)

    def set_times(self, path: str, atime: int, mtime: int) -> None:
        self.times[path] = (atime, mtime)

    def modified(self, path: str) -> None:
        atime, _ = self.times.get(path, (self.started, self.started))
        self.times[path] = (atime, time.time_ns())

    def _attrs(self, path: str, mode: int, size: int, *, nlink: int) -> dict[str, int]:
        atime, mtime = self.times.get(path, (self.started, self.started))
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": BLOCK_SIZE,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": atime,
            "st_mtime": mtime,
            "st_ctime": mtime,
        }

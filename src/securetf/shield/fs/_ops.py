"""The FUSE operations over one volume: what each system call of the program does."""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

from securetf.shield.fs._errors import fuse_error, operation
from securetf.shield.fs._files import OpenFiles
from securetf.shield.fs._fuse import Operations
from securetf.shield.fs._namespace import NamespaceOps
from securetf.shield.fs._tree import Tree
from securetf.volume import Volume, VolumeFileWriter


def rel(path: str) -> str:
    """FUSE's absolute path ("/a/b") as the volume's relative one ("a/b"; "" is the root)."""
    return path.strip("/")


class VolumeOperations(NamespaceOps, Operations):  # type: ignore[misc]
    """Operations of a mounted volume; read-only mounts refuse every change with EROFS."""

    use_ns = True  # mfusepy: times in nanoseconds

    def __init__(
        self,
        volume: Volume,
        *,
        read_only: bool,
        ready: threading.Event,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.volume = volume
        self.read_only = read_only
        self.guard = threading.Lock()
        self.files = OpenFiles()
        self.tree = Tree(volume, owner)
        self._ready = ready

    # -- lifetime -----------------------------------------------------------------------
    def init(self, path: str) -> None:
        self._ready.set()

    # -- looking -------------------------------------------------------------------------
    @operation
    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        p = rel(path)
        if p == "":
            return self.tree.dir_attrs(p)
        shared = self.files.writing.get(p)
        if shared is not None:
            size = shared.size()
            if size is not None:
                return self.tree.file_attrs(p, size, self._mode_of(p))
        if self.volume.exists(p):
            info = self.volume.stat(p)
            return self.tree.file_attrs(p, info.size, info.mode)
        if self.tree.is_dir(p):
            return self.tree.dir_attrs(p)
        raise fuse_error(errno.ENOENT)

    @operation
    def readdir(self, path: str, fh: Any) -> list[str]:
        p = rel(path)
        if not self.tree.is_dir(p):
            raise fuse_error(errno.ENOTDIR)
        return [".", "..", *self.tree.children(p, list(self.files.writing))]

    @operation
    def access(self, path: str, amode: int) -> int:
        if not self._exists(rel(path)):
            raise fuse_error(errno.ENOENT)
        if amode & os.W_OK and self.read_only:
            raise fuse_error(errno.EROFS)
        return 0

    @operation
    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.volume.path)
        return {
            "f_bsize": st.f_bsize,
            "f_frsize": st.f_frsize,
            "f_blocks": st.f_blocks,
            "f_bfree": st.f_bfree,
            "f_bavail": st.f_bavail,
            "f_files": st.f_files,
            "f_ffree": st.f_ffree,
            "f_namemax": 255,
        }

    # -- opening and closing -------------------------------------------------------------
    @operation
    def open(self, path: str, fi: Any) -> int:
        p = rel(path)
        if fi.flags & os.O_ACCMODE == os.O_RDONLY:
            if p in self.files.writing:
                fi.fh = self.files.add_writer(p, None)
            else:
                fi.fh = self.files.add_reader(p, self.volume.open_file(p))
                fi.keep_cache = int(self.read_only)
            return 0
        self._check_writable()
        if p not in self.files.writing and not self.volume.exists(p):
            raise fuse_error(errno.ENOENT)
        truncate = bool(fi.flags & os.O_TRUNC)
        writer: VolumeFileWriter | None = None
        if truncate or p not in self.files.writing:
            writer = self.volume.open_file(p, "wb" if truncate else "r+b")
        fi.fh = self.files.add_writer(p, writer)
        return 0

    @operation
    def create(self, path: str, mode: int, fi: Any) -> int:
        self._check_writable()
        p = rel(path)
        self._check_parent(p)
        writer = self.volume.open_file(p, "wb", file_mode=mode & 0o7777)
        fi.fh = self.files.add_writer(p, writer)
        self.tree.modified(p)
        return 0

    @operation
    def release(self, path: str, fi: Any) -> int:
        self.files.release(int(fi.fh))
        return 0

    def flush(self, path: str, fi: Any) -> int:
        return 0  # content enters the volume at release; durability comes with the commit

    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        return 0  # see flush: the commit on unmount is the one durable, atomic point

    # -- data ----------------------------------------------------------------------------
    @operation
    def read_into(self, path: str, out: memoryview, offset: int, fh: int) -> int:
        handle = self.files.handles[fh]
        shared = handle.shared or self.files.writing.get(handle.path)
        source = shared.writer_in(self.volume) if shared is not None else handle.reader
        if source is None:
            raise fuse_error(errno.EBADF)
        source.seek(offset)
        return source.readinto(out)

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        buf = bytearray(size)
        n = self.read_into(path, memoryview(buf), offset, int(fi.fh))
        return bytes(buf[:n])

    @operation
    def write_view(self, path: str, data: memoryview, offset: int, fh: int) -> int:
        self._check_writable()
        shared = self.files.handles[fh].shared
        if shared is None:
            raise fuse_error(errno.EBADF)
        writer = shared.writer_in(self.volume)
        writer.seek(offset)
        self.tree.modified(shared.path)
        return writer.write(data)

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self.write_view(path, memoryview(data), offset, int(fi.fh))

    @operation
    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        self._check_writable()
        p = rel(path)
        shared = self.files.writing.get(p)
        if shared is not None:
            shared.writer_in(self.volume).truncate(length)
        else:
            with self.volume.open_file(p, "wb" if length == 0 else "r+b") as writer:
                writer.truncate(length)
        self.tree.modified(p)
        return 0

    def _mode_of(self, path: str) -> int:
        return self.volume.stat(path).mode if self.volume.exists(path) else 0o644

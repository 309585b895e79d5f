"""Operations on names: mkdir, rmdir, unlink, rename, chmod, utimens.

The volume keeps files and explicit directories; a directory that holds files exists
implicitly. POSIX expects a directory to outlive its last file, so removing or moving a
file away records its parent as an explicit directory.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time

from securetf.errors import UsageError
from securetf.shield.fs._errors import fuse_error, operation
from securetf.shield.fs._files import OpenFiles
from securetf.shield.fs._tree import Tree, parent_of
from securetf.volume import Volume

_RENAME_NOREPLACE = 1


def _rel(path: str) -> str:
    return path.strip("/")


class NamespaceOps:
    volume: Volume
    read_only: bool
    guard: threading.Lock
    files: OpenFiles
    tree: Tree

    @operation
    def mkdir(self, path: str, mode: int) -> int:
        self._check_writable()
        p = _rel(path)
        self._check_parent(p)
        if self._exists(p):
            raise fuse_error(errno.EEXIST)
        self.volume.mkdir(p)
        self.tree.changed()
        return 0

    @operation
    def rmdir(self, path: str) -> int:
        self._check_writable()
        p = _rel(path)
        if p == "":
            raise fuse_error(errno.EBUSY)
        if not self.tree.is_dir(p):
            raise fuse_error(errno.ENOTDIR if self._exists(p) else errno.ENOENT)
        if self.tree.children(p, list(self.files.writing)):
            raise fuse_error(errno.ENOTEMPTY)
        self.volume.rmdir(p)
        self.tree.changed()
        return 0

    @operation
    def unlink(self, path: str) -> int:
        self._check_writable()
        p = _rel(path)
        if self.tree.is_dir(p):
            raise fuse_error(errno.EISDIR)
        if not self._is_file(p):
            raise fuse_error(errno.ENOENT)
        self._keep_parent(p)
        self.files.forget(p)
        if self.volume.exists(p):
            self.volume.remove(p)
        self.tree.changed()
        return 0

    @operation
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        self._check_writable()
        src, dst = _rel(old), _rel(new)
        if flags & ~_RENAME_NOREPLACE:
            raise fuse_error(errno.EINVAL)  # RENAME_EXCHANGE, RENAME_WHITEOUT
        if not self._exists(src):
            raise fuse_error(errno.ENOENT)
        if dst == src:
            return 0
        if flags & _RENAME_NOREPLACE and self._exists(dst):
            raise fuse_error(errno.EEXIST)
        self._check_parent(dst)
        for shared in self.files.under(src):
            shared.park()  # its content enters the state under the old name, then moves
        self._keep_parent(src)
        if self.tree.is_dir(src):
            self._rename_dir(src, dst)
        else:
            if self.tree.is_dir(dst):
                raise fuse_error(errno.EISDIR)
            self.files.forget(dst)
            self.volume.rename(src, dst)
        self.files.move(src, dst)
        if src in self.tree.times:
            self.tree.times[dst] = self.tree.times.pop(src)
        self.tree.changed()
        return 0

    def _rename_dir(self, src: str, dst: str) -> None:
        if dst == src or dst.startswith(src + "/"):
            raise fuse_error(errno.EINVAL)
        if self._is_file(dst):
            raise fuse_error(errno.ENOTDIR)
        if self.tree.is_dir(dst):
            if self.tree.children(dst, list(self.files.writing)):
                raise fuse_error(errno.ENOTEMPTY)
            self.volume.rmdir(dst)
        inside = src + "/"
        for info in self.volume.files():
            if info.path.startswith(inside):
                self.volume.rename(info.path, dst + info.path[len(src) :])
        for d in sorted(self.volume.directories(), reverse=True):  # deepest first
            if d == src or d.startswith(inside):
                self.volume.mkdir(dst + d[len(src) :])
                with contextlib.suppress(UsageError):  # implied ones went with their files
                    self.volume.rmdir(d)
        self.volume.mkdir(dst)

    @operation
    def chmod(self, path: str, mode: int) -> int:
        self._check_writable()
        p = _rel(path)
        shared = self.files.writing.get(p)
        if shared is not None:
            shared.park()
        if self.volume.exists(p):
            self.volume.chmod(p, mode)
        elif not self.tree.is_dir(p):  # directories carry no mode in the volume
            raise fuse_error(errno.ENOENT)
        return 0

    @operation
    def chown(self, path: str, uid: int, gid: int) -> int:
        self._check_writable()
        return 0  # every file belongs to the mount's owner (the program)

    @operation
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._check_writable()
        now = time.time_ns()
        atime, mtime = times if times is not None else (now, now)
        self.tree.set_times(_rel(path), atime, mtime)
        return 0

    # -- helpers ---------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise fuse_error(errno.EROFS)

    def _is_file(self, p: str) -> bool:
        return p != "" and (p in self.files.writing or self.volume.exists(p))

    def _exists(self, p: str) -> bool:
        return self._is_file(p) or self.tree.is_dir(p)

    def _check_parent(self, p: str) -> None:
        parent = parent_of(p)
        if not self.tree.is_dir(parent):
            raise fuse_error(errno.ENOTDIR if self._is_file(parent) else errno.ENOENT)

    def _keep_parent(self, p: str) -> None:
        parent = parent_of(p)
        if parent:
            self.volume.mkdir(parent)

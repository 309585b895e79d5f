"""Attribute files and the FUSE operations that serve them, for the emulated devices.

A device is a small tree of *attribute files* in the manner of sysfs and configfs: each
open reads fresh content and each write is handed to the device as a whole. The tree is
whatever :class:`DeviceTree` answers; :mod:`._device_fuse` mounts it.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Attr", "DeviceOps", "DeviceTree", "Parts", "refuse"]

log = logging.getLogger("securetf.attestation.emulated")

Parts = tuple[str, ...]


def refuse(code: int) -> OSError:
    """The error a device raises so that the system call fails with ``code``.

    mfusepy answers any OSError with its errno (FuseOSError is one); a plain OSError keeps
    this module free of libfuse, which only mounting loads.
    """
    return OSError(code, os.strerror(code))


@dataclass(frozen=True)
class Attr:
    """One attribute file.

    ``show`` produces the content (called once per open, at the first read); ``store``
    takes what was written. Writes are buffered per open file and stored when it is
    closed (configfs and Gramine semantics: the error, if any, comes back from close),
    unless ``whole_writes``: then each ``write()`` is stored at once and must be exactly
    ``max_size`` bytes at offset 0, else EINVAL (sysfs binary attributes such as RTMRs).
    Without ``show`` the file refuses to be opened for reading, without ``store`` for
    writing (EACCES, as kernfs and configfs do).
    """

    mode: int
    show: Callable[[], bytes] | None = None
    store: Callable[[bytes], None] | None = None
    max_size: int = 4096
    size: int = 0
    whole_writes: bool = False


@dataclass
class _Handle:
    attr: Attr
    content: bytes | None = None
    written: bytearray = field(default_factory=bytearray)
    dirty: bool = False


def _parts(path: str) -> Parts:
    return tuple(p for p in path.split("/") if p)


class DeviceTree(Protocol):
    """What a device answers: its tree, and the changes of it that it allows."""

    @property
    def kind(self) -> str: ...

    def lookup(self, parts: Parts) -> Attr | list[str] | None:
        """The attribute at ``parts``, a directory's entry names, or None if absent."""
        ...

    def mkdir(self, parts: Parts) -> None: ...

    def rmdir(self, parts: Parts) -> None: ...


class DeviceOps:
    """The system calls of a mounted device, answered from its :class:`DeviceTree`.

    mfusepy registers exactly the operations this object has; the others answer ENOSYS,
    which the kernel and libfuse take as "use the default" (access, statfs, opendir).
    """

    use_ns = True  # mfusepy: times in nanoseconds

    def __init__(self, device: DeviceTree, ready: threading.Event) -> None:
        self._device = device
        self._ready = ready
        self._handles: dict[int, _Handle] = {}
        self._ids = itertools.count(1)
        self._guard = threading.Lock()
        self._born = time.time_ns()

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            with self._guard:
                return fn()
        except OSError:
            raise
        except Exception:
            log.exception("emulated %s device failed: answering EIO", self._device.kind)
            raise refuse(errno.EIO) from None

    def _attr(self, path: str) -> Attr:
        node = self._device.lookup(_parts(path))
        if node is None:
            raise refuse(errno.ENOENT)
        if not isinstance(node, Attr):
            raise refuse(errno.EISDIR)
        return node

    # -- lifetime and looking ------------------------------------------------------------
    def init(self, path: str) -> None:
        self._ready.set()

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        node = self._call(lambda: self._device.lookup(_parts(path)))
        times = {"st_atime": self._born, "st_mtime": self._born, "st_ctime": self._born}
        owner = {"st_uid": os.geteuid(), "st_gid": os.getegid()}
        if node is None:
            raise refuse(errno.ENOENT)
        if isinstance(node, Attr):
            mode = stat.S_IFREG | node.mode
            return {"st_mode": mode, "st_nlink": 1, "st_size": node.size, **times, **owner}
        return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, **times, **owner}

    def readdir(self, path: str, fh: Any) -> list[str]:
        node = self._call(lambda: self._device.lookup(_parts(path)))
        if node is None:
            raise refuse(errno.ENOENT)
        if isinstance(node, Attr):
            raise refuse(errno.ENOTDIR)
        return [".", "..", *node]

    # -- changing the tree ---------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> int:
        self._call(lambda: self._device.mkdir(_parts(path)))
        return 0

    def rmdir(self, path: str) -> int:
        self._call(lambda: self._device.rmdir(_parts(path)))
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        raise refuse(errno.EACCES)  # attribute files come and go with their directory only

    def unlink(self, path: str) -> int:
        raise refuse(errno.EPERM)

    # -- opening and closing -------------------------------------------------------------
    def open(self, path: str, fi: Any) -> int:
        def opened() -> int:
            attr = self._attr(path)
            access = fi.flags & os.O_ACCMODE
            if access != os.O_WRONLY and attr.show is None:
                raise refuse(errno.EACCES)
            if access != os.O_RDONLY and attr.store is None:
                raise refuse(errno.EACCES)
            handle = next(self._ids)
            self._handles[handle] = _Handle(attr)
            return handle

        fi.fh = self._call(opened)
        fi.direct_io = 1
        return 0

    def flush(self, path: str, fi: Any) -> int:
        def stored() -> None:
            handle = self._handles.get(int(fi.fh))
            if handle is not None and handle.dirty and handle.attr.store is not None:
                handle.dirty = False
                handle.attr.store(bytes(handle.written))

        self._call(stored)
        return 0

    def release(self, path: str, fi: Any) -> int:
        self.flush(path, fi)
        self._call(lambda: self._handles.pop(int(fi.fh), None))
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        # O_TRUNC on open: accepted on writable files (what is written is stored whole).
        if self._call(lambda: self._attr(path)).store is None:
            raise refuse(errno.EACCES)
        return 0

    # -- data ----------------------------------------------------------------------------
    def read_into(self, path: str, out: memoryview, offset: int, fh: int) -> int:
        def content() -> bytes:
            handle = self._handles[fh]
            if handle.content is None:
                if handle.attr.show is None:
                    raise refuse(errno.EBADF)
                handle.content = handle.attr.show()
            return handle.content

        chunk = self._call(content)[offset : offset + len(out)]
        out[: len(chunk)] = chunk
        return len(chunk)

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        buf = bytearray(size)
        n = self.read_into(path, memoryview(buf), offset, int(fi.fh))
        return bytes(buf[:n])

    def write_view(self, path: str, data: memoryview, offset: int, fh: int) -> int:
        def written() -> int:
            handle = self._handles[fh]
            attr = handle.attr
            if attr.store is None:
                raise refuse(errno.EBADF)
            if attr.whole_writes:
                if offset != 0 or len(data) != attr.max_size:
                    raise refuse(errno.EINVAL)
                attr.store(bytes(data))
                return len(data)
            end = offset + len(data)
            if end > attr.max_size:
                raise refuse(errno.EFBIG)
            if len(handle.written) < end:
                handle.written.extend(bytes(end - len(handle.written)))
            handle.written[offset:end] = data
            handle.dirty = True
            return len(data)

        result: int = self._call(written)
        return result

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self.write_view(path, memoryview(data), offset, int(fi.fh))

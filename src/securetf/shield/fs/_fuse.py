"""The typed edge of mfusepy (ctypes over libfuse3): the only module that imports it.

mfusepy would hand read data back as ``bytes`` and copy written data into ``bytes``; the
:class:`_ZeroCopyFUSE` below instead gives the operations a memoryview of libfuse's own
buffer, so chunks are decrypted straight into the reply (and never copied twice).
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any, Protocol

from securetf._libc import LIBFUSE3_SONAME

# mfusepy picks libfuse 2 when both are installed; the shield is built for libfuse 3
# (bigger requests, fuse_config options). Set before the import, which loads the library:
# by its soname, as the dynamic linker finds it (a library name would have mfusepy run
# ldconfig to look it up). An operator's own choice of another library stands.
if (
    "FUSE_LIBRARY_PATH" not in os.environ
    and os.environ.get("FUSE_LIBRARY_NAME", "fuse3") == "fuse3"
):
    os.environ["FUSE_LIBRARY_PATH"] = LIBFUSE3_SONAME

import mfusepy

__all__ = ["FuseOSError", "Operations", "ReadInto", "run_fuse"]

FuseOSError: type[OSError] = mfusepy.FuseOSError
Operations: type[Any] = mfusepy.Operations

log = logging.getLogger(__name__)

#: Largest read the kernel sends us at once, and its read-ahead window (bytes).
MAX_READAHEAD = 1024 * 1024
READ_AHEAD_KB = 4096


class ReadInto(Protocol):
    """What the zero-copy FUSE adapter needs of the operations object."""

    def read_into(self, path: str, out: memoryview, offset: int, fh: int) -> int: ...

    def write_view(self, path: str, data: memoryview, offset: int, fh: int) -> int: ...


def _view(buf: Any, size: int) -> memoryview:
    address = ctypes.addressof(buf.contents)
    return memoryview((ctypes.c_char * size).from_address(address)).cast("B")


class _ZeroCopyFUSE(mfusepy.FUSE):  # type: ignore[misc]
    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        ops: ReadInto = self.operations
        return ops.read_into(_decode(path), _view(buf, size), offset, int(fip.contents.fh))

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        ops: ReadInto = self.operations
        return ops.write_view(_decode(path), _view(buf, size), offset, int(fip.contents.fh))

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        result: int = self.operations.rename(_decode(old), _decode(new), flags)
        return result

    def init_fuse_3(self, conn: Any, config: Any) -> None:
        if conn:
            conn.contents.max_readahead = MAX_READAHEAD
        super().init_fuse_3(conn, config)


def _decode(path: bytes | None) -> str:
    return "" if path is None else path.decode("utf-8", "surrogateescape")


def run_fuse(
    operations: object, mountpoint: str, options: dict[str, object], *, threads: bool = False
) -> None:
    """Mount and serve until unmounted (blocking), in the foreground; single-threaded
    unless ``threads`` (for operations that are safe to run concurrently).

    Raises RuntimeError if libfuse fails to mount or exits with an error.
    """
    if mfusepy.fuse_version_major != 3:
        raise RuntimeError(f"libfuse 3 is required, found libfuse {mfusepy.fuse_version_major}")
    _ZeroCopyFUSE(
        operations, mountpoint, raw_fi=True, foreground=True, nothreads=not threads, **options
    )


def tune_readahead(device: int) -> None:
    """Widen the kernel's read-ahead for this mount so sequential reads come 1 MiB at a time."""
    if os.major(device) != 0:  # FUSE mounts have anonymous devices; never tune a real disk
        return
    bdi = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
    try:
        with open(bdi, "w") as f:
            f.write(str(READ_AHEAD_KB))
    except OSError as exc:  # not root, or no sysfs: slower, still correct
        log.debug("cannot set %s: %s", bdi, exc)

"""Mounting an environment image: verified reads through FUSE, the file system by the kernel.

As dm-verity does for a block device, the shield shows the image's file system as one
file, ``image``, whose every read is checked chunk by chunk against the hash list the
image's measurement covers (:class:`securetf.envimage.EnvImage`); a changed chunk fails
that read with EIO. The kernel's EROFS then mounts that file read-only (straight from the
file, or on older kernels through a loop device), so looking up and opening files costs
what a local file system costs, and only data reads pass the shield.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from securetf._libc import load_libc
from securetf.envimage import EnvImage
from securetf.errors import Error, IntegrityError, UsageError
from securetf.shield.fs._fuse import FuseOSError, Operations
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse, check_mountpoint

log = logging.getLogger("securetf.shield.fs")

_FILE = "image"
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 1, 2, 4
_libc = load_libc()
_TIMEOUT = 10.0
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class ImageOperations(Operations):  # type: ignore[misc]
    """One read-only file, ``/image``: the image's data, verified on every read."""

    use_ns = True

    def __init__(self, image: EnvImage, ready: threading.Event) -> None:
        self.image = image
        self._ready = ready
        self.failed = 0
        """Reads refused because a chunk did not match its hash."""

    def init(self, path: str) -> None:
        self._ready.set()

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o500, "st_nlink": 2, "st_uid": 0, "st_gid": 0}
        if path == f"/{_FILE}":
            size = self.image.layout.data_size
            return {
                "st_mode": stat.S_IFREG | 0o400,
                "st_nlink": 1,
                "st_size": size,
                "st_uid": 0,
                "st_gid": 0,
            }
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", _FILE]

    def open(self, path: str, fi: Any) -> int:
        if path != f"/{_FILE}":
            raise FuseOSError(errno.ENOENT)
        if fi.flags & 3 != 0:  # O_WRONLY, O_RDWR
            raise FuseOSError(errno.EROFS)
        fi.keep_cache = 1  # what the page cache holds was verified when it was read
        return 0

    def read_into(self, path: str, out: memoryview, offset: int, fh: int) -> int:
        try:
            return self.image.read_into(out, offset)
        except IntegrityError as exc:
            self.failed += 1
            log.error("%s: the read fails with EIO", exc)
            raise FuseOSError(errno.EIO) from None
        except OSError as exc:
            raise FuseOSError(exc.errno or errno.EIO) from None

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        buf = bytearray(size)
        n = self.read_into(path, memoryview(buf), offset, 0)
        return bytes(buf[:n])

    def write_view(self, path: str, data: memoryview, offset: int, fh: int) -> int:
        raise FuseOSError(errno.EROFS)

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise UsageError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


class ImageMount:
    """An environment image mounted read-only at ``target``; :meth:`close` takes it down.

    ``verified_at`` is where the verified file is served (an empty directory of its own).
    """

    def __init__(self, image: EnvImage, verified_at: Path, target: Path) -> None:
        self.image = image
        self.verified_at = verified_at
        self.target = target
        self._ready = threading.Event()
        self.ops = ImageOperations(image, self._ready)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="securetf-env", daemon=True)
        self._device: int | None = None
        self._mounted = False

    def _serve(self) -> None:
        from securetf.shield.fs._fuse import run_fuse

        options: dict[str, object] = {
            "fsname": "securetf-env",
            "subtype": "securetf-env",
            "ro": True,
            "kernel_cache": True,
            "attr_timeout": 3600,
            "entry_timeout": 3600,
        }
        try:
            run_fuse(self.ops, str(self.verified_at), options)
        except BaseException as exc:
            self._error = exc

    def start(self) -> None:
        from securetf.shield.fs._fuse import tune_readahead

        parent = os.stat(self.verified_at).st_dev
        self._thread.start()
        deadline = time.monotonic() + _TIMEOUT
        while not self._ready.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FuseUnavailableError(
                    f"serving the environment image failed: {self._error or 'timed out'}"
                )
        self._device = os.stat(self.verified_at).st_dev
        if self._device == parent:
            raise FuseUnavailableError("serving the environment image failed: nothing mounted")
        tune_readahead(self._device)
        self._mount_erofs()
        self._mounted = True

    def _mount_erofs(self) -> None:
        """EROFS straight from the verified file (Linux 6.12 and later), else through a
        loop device in direct-I/O mode (the shield's file is then the only cache)."""
        source = str(self.verified_at / _FILE).encode()
        flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        if _libc.mount(source, str(self.target).encode(), b"erofs", flags, None) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOTBLK, errno.EINVAL):
            raise UsageError(f"mounting the environment image failed: {os.strerror(err)}")
        losetup = shutil.which("losetup", path=_SYSTEM_PATH) or "losetup"
        found = subprocess.run(
            [losetup, "--direct-io=on", "--read-only", "--find", "--show", source.decode()],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode != 0:
            raise UsageError(f"no loop device for the environment image: {found.stderr.strip()}")
        device = found.stdout.strip()
        try:
            if _libc.mount(device.encode(), str(self.target).encode(), b"erofs", flags, None) != 0:
                err = ctypes.get_errno()
                raise UsageError(f"mounting the environment image failed: {os.strerror(err)}")
        finally:
            # Detaching a device in use only marks it: it goes when the mount does.
            _run([losetup, "--detach", device], "releasing the loop device")

    def close(self) -> None:
        """Unmount the file system (a loop device goes with it), then the verified file."""
        from securetf.shield.fs._unmount import unmount

        umount = shutil.which("umount", path=_SYSTEM_PATH) or "umount"
        if self._mounted:
            self._mounted = False
            try:
                _run([umount, str(self.target)], "unmounting the environment image")
            except Error:
                _run([umount, "-l", str(self.target)], "detaching the environment image")
            _wait_loop_released(self.verified_at / _FILE)
        unmount(self.verified_at, self._device)
        self._thread.join(_TIMEOUT)
        self.image.close()


def _wait_loop_released(backing: Path, timeout: float = 5.0) -> None:
    """A loop device lets go of its file shortly after its last user (autoclear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(
            p.read_text().strip() == str(backing)
            for p in Path("/sys/block").glob("loop*/loop/backing_file")
            if _readable(p)
        ):
            return
        time.sleep(0.02)


def _readable(path: Path) -> bool:
    try:
        path.read_text()
    except OSError:
        return False
    return True


def mount_image(image: EnvImage, verified_at: Path, target: Path) -> ImageMount:
    """Mount ``image`` read-only at ``target`` (an empty directory), serving its verified
    file at ``verified_at`` (another); needs root, /dev/fuse and a free loop device."""
    check_fuse()
    for d in (verified_at, target):
        check_mountpoint(d)
    handle = ImageMount(image, verified_at, target)
    try:
        handle.start()
    except BaseException:
        handle.close()
        raise
    return handle

"""Mounting an emulated device: the FUSE loop in a thread, and a sure unmount.

The loop runs in a thread of this process with the shield's conventions (libfuse 3
through :mod:`securetf.shield.fs._fuse`, the same preflight checks, the same escalating
unmount), so what a test mounts is gone when its ``with`` block ends, even on error.

Every file is opened with ``direct_io`` and nothing is cached (attribute, entry and
negative timeouts are 0): like the kernel's pseudo-files, content is produced per open
and never comes out of the page cache.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from securetf._logutil import warn_loudly
from securetf.attestation.emulated._device_ops import Attr, DeviceOps, Parts, refuse
from securetf.errors import UsageError
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse, check_mountpoint

__all__ = ["FuseDevice"]

log = logging.getLogger("securetf.attestation.emulated")

MOUNT_TIMEOUT = 10.0
UNMOUNT_TIMEOUT = 10.0


class FuseDevice:
    """A device tree served over FUSE at ``mountpoint``; a context manager.

    Subclasses answer :meth:`lookup` (and :meth:`mkdir`/:meth:`rmdir` if their tree
    changes). ``with device:`` mounts and waits until the file system serves; leaving the
    block unmounts for sure, whatever happened inside it.
    """

    kind: ClassVar[str] = "TEE"

    def __init__(self, mountpoint: Path) -> None:
        self._mountpoint = Path(mountpoint)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._device: int | None = None

    @property
    def mountpoint(self) -> Path:
        return self._mountpoint

    # -- the tree (subclasses) -----------------------------------------------------------
    def lookup(self, parts: Parts) -> Attr | list[str] | None:
        """The attribute at ``parts``, a directory's entry names, or None if absent."""
        raise NotImplementedError

    def mkdir(self, parts: Parts) -> None:
        raise refuse(errno.EPERM)

    def rmdir(self, parts: Parts) -> None:
        raise refuse(errno.EPERM)

    # -- mounting ------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.mount()
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unmount()

    @property
    def mounted(self) -> bool:
        """Whether this device's FUSE loop still serves its mount point."""
        return self._thread is not None and self._thread.is_alive()

    def mount(self) -> None:
        """Mount at the mount point (an existing empty directory) and wait until it serves.

        Raises :class:`FuseUnavailableError` when FUSE is missing or the mount fails.
        """
        if self._thread is not None:
            raise UsageError(f"the emulated {self.kind} device is mounted already")
        check_fuse()
        self._mountpoint = check_mountpoint(self._mountpoint)
        parent_dev = os.stat(self._mountpoint).st_dev
        ready = threading.Event()
        ops = DeviceOps(self, ready)
        self._thread = threading.Thread(
            target=self._serve, args=(ops,), name=f"securetf-emulated:{self._mountpoint}"
        )
        self._thread.daemon = True
        # libfuse's fuse_main changes the working directory of the whole process to "/"
        # before it serves; put ours back once it does, or relative paths break.
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        self._thread.start()
        try:
            deadline = time.monotonic() + MOUNT_TIMEOUT
            while not ready.wait(0.05):
                if not self._thread.is_alive():
                    raise FuseUnavailableError(f"mounting {self._mountpoint} failed: {self._error}")
                if time.monotonic() > deadline:
                    raise FuseUnavailableError(f"mounting {self._mountpoint} timed out")
            self._device = os.stat(self._mountpoint).st_dev
            if self._device == parent_dev:
                raise FuseUnavailableError(f"mounting {self._mountpoint} failed: nothing mounted")
        except BaseException:
            self.unmount()
            raise
        finally:
            os.fchdir(cwd)
            os.close(cwd)
        warn_loudly(
            log,
            "EMULATED %s device mounted at %s: its evidence has no hardware protection",
            self.kind,
            self._mountpoint,
        )

    def _serve(self, ops: DeviceOps) -> None:
        from securetf.shield.fs._fuse import run_fuse

        options: dict[str, object] = {
            "fsname": f"securetf-emulated-{self.kind.lower()}",
            "subtype": "securetf-emulated",
            "default_permissions": True,
            "direct_io": True,
            "attr_timeout": 0,
            "entry_timeout": 0,
            "negative_timeout": 0,
        }
        if os.geteuid() == 0:
            options["allow_other"] = True
        try:
            run_fuse(ops, str(self._mountpoint), options)
        except BaseException as exc:  # reported by mount()
            self._error = exc

    def unmount(self) -> None:
        """Unmount for sure (escalating as the shield does) and end the FUSE loop."""
        from securetf.shield.fs._unmount import unmount

        thread, self._thread = self._thread, None
        if thread is None:
            return
        unmount(self._mountpoint, self._device)
        thread.join(UNMOUNT_TIMEOUT)
        if thread.is_alive():
            log.error("the FUSE loop of %s did not end; its thread is left behind", self.mountpoint)

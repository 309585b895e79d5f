"""Checks made before mounting, so a missing device or privilege fails at once, by name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from securetf.errors import Error

FUSE_DEVICE = Path("/dev/fuse")


class FuseUnavailableError(Error):
    """This machine or process cannot mount FUSE file systems; the message names what is missing."""


def check_fuse(device: Path = FUSE_DEVICE) -> None:
    """Raise :class:`FuseUnavailableError` unless this process can mount a FUSE file system."""
    if not device.exists():
        raise FuseUnavailableError(
            f"FUSE is not available: {device} does not exist (load the 'fuse' kernel module, "
            "or give the container the device, e.g. docker run --device /dev/fuse)"
        )
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as exc:
        raise FuseUnavailableError(
            f"cannot open {device}: {exc.strerror}; mounting the file system shield needs root "
            "(CAP_SYS_ADMIN) or read-write access to the device"
        ) from None
    os.close(fd)
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise FuseUnavailableError(
            "mounting FUSE as a non-root user needs the setuid fusermount3 (Debian package "
            "fuse3); install it or run as root"
        )
    _load_libfuse()


def _load_libfuse() -> None:
    try:
        import securetf.shield.fs._fuse  # noqa: F401  (loads libfuse3 through ctypes)
    except (ImportError, OSError, AttributeError) as exc:
        raise FuseUnavailableError(
            f"libfuse3 cannot be loaded ({exc}); install Debian's fuse3 and libfuse3-3"
        ) from None


def check_mountpoint(mountpoint: Path) -> Path:
    """The absolute mount point, which must be an existing empty directory."""
    try:
        path = mountpoint.resolve(strict=True)
        empty = path.is_dir() and not any(path.iterdir())
    except OSError as exc:
        raise FuseUnavailableError(
            f"cannot use {mountpoint} as a mount point: {exc.strerror} (a stale mount? "
            f"run 'fusermount3 -u {mountpoint}')"
        ) from None
    if not empty:
        raise FuseUnavailableError(f"mount point {mountpoint} must be an existing empty directory")
    return path

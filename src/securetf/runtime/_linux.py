"""The few Linux calls the runtime needs: a private mount namespace and tmpfs mounts."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from securetf.errors import Error, UsageError

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class PrivilegeError(Error):
    """The runtime lacks a privilege; the message names it."""

    exit_code = 2


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            "securetf run needs root (CAP_SYS_ADMIN) for its private mount namespace and FUSE "
            "mounts; run it as root, or in a container with --cap-add SYS_ADMIN --device /dev/fuse"
        )


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"{what} failed: {os.strerror(err)}")


def private_mount_namespace() -> None:
    """Move this process into a new mount namespace whose mounts the host never sees."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(
        _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
        "making / private in the new mount namespace",
    )


def mount_tmpfs(path: Path, *, size: str = "64m", mode: int = 0o700) -> None:
    """A memory file system at ``path`` (created if missing): nothing written reaches a disk."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode={mode:o}".encode()
    _check(
        _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options),
        f"mounting tmpfs at {path}",
    )


def bind_file(source: Path, target: Path) -> None:
    """Show ``source`` at ``target`` (an existing file) in this mount namespace only."""
    _check(
        _libc.mount(str(source).encode(), str(target).encode(), None, MS_BIND, None),
        f"bind-mounting {source} at {target}",
    )


def umount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), 2) != 0:  # MNT_DETACH
        err = ctypes.get_errno()
        raise UsageError(f"cannot unmount {path}: {os.strerror(err)}")

"""The few Linux calls the runtime needs: namespaces, tmpfs and bind mounts."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from securetf._libc import load_libc
from securetf.errors import Error, UsageError

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
#: statvfs flags of a mount, and the mount flags that keep them on a remount.
_KEEP = (
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

_libc = load_libc()


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


def mount_tmpfs(
    path: Path, *, size: str = "64m", mode: int = 0o700, owner: tuple[int, int] | None = None
) -> None:
    """A memory file system at ``path`` (created if missing): nothing written reaches a disk.

    Its root belongs to ``owner`` (uid, gid), by default to this process's user."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode={mode:o}"
    if owner is not None:
        options += f",uid={owner[0]},gid={owner[1]}"
    _check(
        _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()),
        f"mounting tmpfs at {path}",
    )


def bind_file(source: Path, target: Path) -> None:
    """Show ``source`` at ``target`` (an existing file) in this mount namespace only."""
    _check(
        _libc.mount(str(source).encode(), str(target).encode(), None, MS_BIND, None),
        f"bind-mounting {source} at {target}",
    )


def bind(source: Path, target: Path, *, read_only: bool = True) -> None:
    """Show ``source`` (a directory or file) at the existing ``target``, read-only unless
    told otherwise, in this mount namespace only."""
    _check(
        _libc.mount(str(source).encode(), str(target).encode(), None, MS_BIND, None),
        f"bind-mounting {source} at {target}",
    )
    if read_only:
        remount_read_only(target)


def remount_read_only(target: Path) -> None:
    """Make the mount at ``target`` read-only and nosuid, keeping its other flags (a
    remount that dropped nodev or noexec would loosen the mount)."""
    current = os.statvfs(target).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
    flags |= sum(mount_flag for st_flag, mount_flag in _KEEP if current & st_flag)
    _check(
        _libc.mount(None, str(target).encode(), None, flags, None),
        f"making {target} read-only",
    )


@contextlib.contextmanager
def new_pid_namespace() -> Iterator[None]:
    """The first process this thread starts in the block is PID 1 of a new PID namespace
    (``unshare`` and ``setns`` of a PID namespace move only the calling thread's children)."""
    home = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWPID), "returning to the runtime's PID namespace")
    finally:
        os.close(home)


def umount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), 2) != 0:  # MNT_DETACH
        err = ctypes.get_errno()
        raise UsageError(f"cannot unmount {path}: {os.strerror(err)}")

"""Taking a mount down for sure: polite unmount, then abort and lazy detach.

A program that still holds files open makes a plain unmount fail with EBUSY. The shield
must never leave a mount behind, so it then aborts the FUSE connection (pending and later
I/O fail with ENOTCONN) and detaches the mount lazily.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger("securetf.shield.fs")

FUSECTL = Path("/sys/fs/fuse/connections")


def _unescape(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts() -> dict[str, str]:
    """Mount point -> file system type, in this process's mount namespace (the last mount
    on a point wins, as it is the one seen there)."""
    found: dict[str, str] = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                found[_unescape(fields[1])] = fields[2]
    return found


def is_mounted(mountpoint: Path) -> bool:
    """Whether anything is mounted at ``mountpoint`` in this process's mount namespace."""
    return str(mountpoint) in mounts()


def _run(*argv: str) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", argv[0], exc)
        return False
    if done.returncode != 0:
        log.debug("%s: %s", " ".join(argv), done.stderr.strip())
    return done.returncode == 0


def abort_connection(device: int) -> None:
    """Abort the FUSE connection of the mount on ``device`` (needs the fusectl file system)."""
    if not FUSECTL.is_dir() or not any(FUSECTL.iterdir()):
        _run("mount", "-t", "fusectl", "fusectl", str(FUSECTL))
    abort = FUSECTL / str(os.minor(device)) / "abort"
    try:
        abort.write_text("1")
    except OSError as exc:
        log.debug("cannot abort FUSE connection %s: %s", abort, exc)


def unmount(mountpoint: Path, device: int | None) -> None:
    """Unmount ``mountpoint``; escalate until nothing is mounted there."""
    if not is_mounted(mountpoint):
        return
    if _run("fusermount3", "-u", "-q", str(mountpoint)) and not is_mounted(mountpoint):
        return
    log.warning("%s is busy (files still open); aborting the FUSE connection", mountpoint)
    if device is not None:
        abort_connection(device)
    for argv in (("fusermount3", "-u", "-z", "-q"), ("umount", "-l")):
        if not is_mounted(mountpoint):
            return
        _run(*argv, str(mountpoint))
    if is_mounted(mountpoint):
        log.error("%s is still mounted after every unmount attempt", mountpoint)

"""An environment image kept mounted for every run on this machine (``securetf env serve``).

A fresh mount per run checks every chunk a program reads, every time: TensorFlow's import
reads about 800 MB of its image, hashed again on each run. As a dm-verity device set up
once at boot serves every container started later, ``securetf env serve IMAGE`` mounts an
image once, in the machine's own mount namespace, under ``/run/securetf/env/<digest>``, and
``securetf run`` uses that mount when its image has the same measurement: chunks are
checked when first read, and the kernel's cache of the verified file system serves later
runs.

The trust is the same as a run's own mount: the verified data lives in the kernel's page
cache either way (inside the TEE on a confidential VM; trusted in sim). What the storage
admin holds, the image file, is read through the shield only.

Leases: each run holds a shared ``flock`` on ``lease`` from before it uses the mount until
its program's root is gone; the server, told to stop, takes it exclusively (so waits for
running programs), withdraws ``ready`` and unmounts. A run that finds no ready server, a
server stopping, or a mount it cannot see in its own namespace mounts the image itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from securetf.envimage import EnvImage, measurement_text
from securetf.errors import UsageError
from securetf.shield.fs._image import ImageMount, mount_image
from securetf.shield.fs._unmount import is_mounted, mounts, unmount

log = logging.getLogger("securetf.shield.fs")

STATE = Path("/run/securetf/env")
_READY = "ready"
_LEASE = "lease"


def _dir_of(digest: bytes, state: Path) -> Path:
    return state / digest.hex()


@dataclass
class SharedImage:
    """A run's lease on a kept mount: ``root`` is the image's file system, read-only."""

    root: Path
    _lease: int

    def release(self) -> None:
        if self._lease >= 0:
            os.close(self._lease)  # closing drops the flock
            self._lease = -1


def shared_image(digest: bytes, state: Path = STATE) -> SharedImage | None:
    """The kept mount of the image ``digest``, leased to this run; None if there is none
    this process can use (then the run mounts the image itself)."""
    where = _dir_of(digest, state)
    try:
        st = os.lstat(where)
        fd = os.open(where / _LEASE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if st.st_uid != 0 or st.st_mode & 0o077:
        os.close(fd)
        log.warning("%s is not root's own (mode 0700): not used", where)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails while the server stops
        ready = json.loads((where / _READY).read_text())
        if ready.get("digest") != digest.hex():
            raise ValueError("another image")
        os.kill(int(ready["pid"]), 0)
        found = mounts()
        root = where / "root"
        verified = found.get(str(where / "verified"), "")
        if found.get(str(root)) != "erofs" or not verified.startswith("fuse"):
            raise ValueError("not mounted in this namespace")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("the kept mount at %s is not usable: %s", where, exc)
        os.close(fd)
        return None
    log.info("environment image %s: the kept mount at %s", measurement_text(digest), root)
    return SharedImage(root, fd)


class ImageServer:
    """``securetf env serve``: mount ``image`` under ``state`` until :meth:`stop`."""

    def __init__(self, image: EnvImage, state: Path = STATE) -> None:
        self.image = image
        self.where = _dir_of(image.digest, state)
        self._mount: ImageMount | None = None
        self._lease = -1

    def start(self) -> None:
        self.where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.where.mkdir(mode=0o700)
        except FileExistsError:
            self._reclaim()
            self.where.mkdir(mode=0o700)
        os.chmod(self.where, 0o700)
        (self.where / "verified").mkdir()
        (self.where / "root").mkdir()
        self._lease = os.open(self.where / _LEASE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._mount = mount_image(self.image, self.where / "verified", self.where / "root")
        except BaseException:
            self._remove()
            raise
        ready = {"digest": self.image.digest.hex(), "pid": os.getpid()}
        tmp = self.where / f".{_READY}"
        tmp.write_text(json.dumps(ready))
        os.rename(tmp, self.where / _READY)

    def _reclaim(self) -> None:
        """Take over the directory of a server that died (killed, or its machine's power
        cut), unmounting what it left; refuse while a live server holds it."""
        try:
            pid = int(json.loads((self.where / _READY).read_text())["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError):
            pid = 0
        if pid:
            raise UsageError(
                f"the image {measurement_text(self.image.digest)} is already served here "
                f"(process {pid}, {self.where}): use that, or stop it first"
            )
        log.warning("%s was left by a server that died: unmounting it and taking over", self.where)
        if is_mounted(self.where / "root"):
            subprocess.run(["umount", "-l", str(self.where / "root")], check=False, timeout=30)
        unmount(self.where / "verified", None)  # a dead FUSE server's: aborted, detached
        self._remove()

    def stop(self) -> None:
        """Wait for the runs holding a lease, then withdraw and unmount."""
        if self._lease >= 0:
            fcntl.flock(self._lease, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.where / _READY)
        if self._mount is not None:
            self._mount.close()
            self._mount = None
        self._remove()

    def _remove(self) -> None:
        if self._lease >= 0:
            os.close(self._lease)
            self._lease = -1
        for name in (_LEASE, f".{_READY}", _READY):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.where / name)
        for name in ("root", "verified", ""):
            with contextlib.suppress(OSError):
                os.rmdir(self.where / name if name else self.where)

    def serve_until_signalled(self) -> None:
        """Block until SIGTERM or SIGINT, then :meth:`stop`."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        self.stop()

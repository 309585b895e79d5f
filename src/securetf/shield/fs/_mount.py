"""Mounting a volume: the FUSE loop in a background thread, commit, and a sure unmount.

The loop runs in a thread of the calling process, so a caller that entered a private
mount namespace (``unshare(CLONE_NEWNS)``) before calling :func:`mount` gets the mount in
that namespace only: threads created afterwards, and ``fusermount3``, inherit it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

from securetf.errors import Error, UsageError
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse, check_mountpoint
from securetf.volume import Volume

log = logging.getLogger("securetf.shield.fs")

#: How long mounting may take before it counts as failed, and unmounting before we give up.
MOUNT_TIMEOUT = 10.0
UNMOUNT_TIMEOUT = 10.0
#: Attribute cache of read-only mounts: nothing changes under them.
READ_ONLY_CACHE_SECONDS = 3600


def _options(read_only: bool) -> dict[str, object]:
    options: dict[str, object] = {
        "fsname": "securetf",
        "subtype": "securetf",
        "default_permissions": True,
    }
    if os.geteuid() == 0:
        options["allow_other"] = True  # the program may run as another user
    if read_only:
        # Contents never change under a read-only mount: let the page cache keep them.
        options |= {
            "ro": True,
            "kernel_cache": True,
            "attr_timeout": READ_ONLY_CACHE_SECONDS,
            "entry_timeout": READ_ONLY_CACHE_SECONDS,
            "negative_timeout": READ_ONLY_CACHE_SECONDS,
        }
    return options


class Mount:
    """A volume mounted at a path. Use :func:`mount`; a context manager that unmounts."""

    def __init__(
        self,
        volume: Volume,
        mountpoint: Path,
        *,
        read_only: bool,
        owner: tuple[int, int] | None = None,
    ) -> None:
        from securetf.shield.fs._ops import VolumeOperations  # loads libfuse

        self.volume = volume
        self.mountpoint = mountpoint
        self.read_only = read_only
        self._ready = threading.Event()
        self._ops = VolumeOperations(volume, read_only=read_only, ready=self._ready, owner=owner)
        self._error: BaseException | None = None
        self._device: int | None = None
        self._thread = threading.Thread(
            target=self._serve, name=f"securetf-fuse:{mountpoint}", daemon=True
        )
        self._closed = False

    def _serve(self) -> None:
        from securetf.shield.fs._fuse import run_fuse

        try:
            run_fuse(self._ops, str(self.mountpoint), _options(self.read_only))
        except BaseException as exc:  # reported by start() or unmount()
            self._error = exc

    def _start(self) -> None:
        from securetf.shield.fs._fuse import tune_readahead

        parent_dev = os.stat(self.mountpoint).st_dev
        self._thread.start()
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not self._ready.wait(0.05):
            if not self._thread.is_alive():
                raise FuseUnavailableError(f"mounting {self.mountpoint} failed: {self._error}")
            if time.monotonic() > deadline:
                self.unmount(commit=False)
                raise FuseUnavailableError(f"mounting {self.mountpoint} timed out")
        self._device = os.stat(self.mountpoint).st_dev
        if self._device == parent_dev:
            self.unmount(commit=False)
            raise FuseUnavailableError(f"mounting {self.mountpoint} failed: nothing was mounted")
        tune_readahead(self._device)

    @property
    def alive(self) -> bool:
        """Whether the FUSE loop still serves the mount."""
        return self._thread.is_alive()

    def commit(self) -> str:
        """Publish everything written so far as the volume's next state; return its tag.

        Files still open for writing are committed with their current content.
        """
        if self.read_only:
            raise UsageError("a read-only mount has nothing to commit")
        with self._ops.guard:
            self._ops.files.park_all()
            return self.volume.commit()

    def unmount(self, *, commit: bool = True, keep: Collection[str] = ()) -> str | None:
        """Unmount for sure; then commit the volume (writable mounts, ``commit=True``).

        Returns the committed tag, or None for a read-only mount or when nothing was
        committed. Writes of files that were never closed (the program still held them) are
        dropped, but for the files ``keep`` names (paths inside the volume), whose content
        so far is kept. With ``commit=False`` the volume on storage keeps its previous
        state, but for the ``keep`` files: when one changed, it alone is committed
        (:meth:`Volume.revert`). The caller closes the :class:`Volume` to drop the rest.
        """
        if self._closed:
            raise UsageError(f"{self.mountpoint} was unmounted already")
        from securetf.shield.fs._unmount import unmount

        self._closed = True
        unmount(self.mountpoint, self._device)
        self._thread.join(UNMOUNT_TIMEOUT)
        if self._thread.is_alive():
            log.error("the FUSE loop of %s did not end; its thread is left behind", self.mountpoint)
        with self._ops.guard:
            # A release the kernel sends after close() may not have arrived.
            for path in keep:
                shared = self._ops.files.writing.get(path)
                if shared is not None:
                    shared.park()
            self._ops.files.close_all()
            if self.read_only:
                return None
            if not commit and not (keep and self.volume.revert(keep=keep)):
                return None
            try:
                return self.volume.commit()
            except Error:
                raise
            except OSError as exc:
                raise UsageError(f"cannot commit volume {self.volume.path}: {exc}") from exc

    def __enter__(self) -> Mount:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._closed:
            self.unmount(commit=t is None)


def mount(
    volume: Volume, mountpoint: Path, *, read_only: bool, owner: tuple[int, int] | None = None
) -> Mount:
    """Mount ``volume`` at ``mountpoint`` (an empty directory) and return once it serves.

    ``read_only=False`` needs a volume opened with ``writable=True``. Every file and
    directory belongs to ``owner`` (uid, gid), by default the caller's user; the kernel
    checks access against that owner and the files' modes (``default_permissions``), and
    lets other users in only when the caller is root (``allow_other``). Fails at once with
    :class:`FuseUnavailableError` when /dev/fuse, libfuse3 or the privilege is missing.
    """
    check_fuse()
    path = check_mountpoint(Path(mountpoint))
    if not read_only and not volume.writable:
        raise UsageError("a writable mount needs a volume opened with writable=True")
    handle = Mount(volume, path, read_only=read_only, owner=owner)
    try:
        handle._start()
    except BaseException:
        if not handle._closed:
            handle.unmount(commit=False)
        raise
    return handle

"""The program's root file system, built in the runtime's private mount namespace.

A tmpfs holds the whole view (docs/runtime.md, "The program's view"): the system's
directories and securetf's Python environment bound read-only at their own paths, a
minimal ``/etc`` written by the runtime, the app copy, a few device nodes, and memory file
systems for ``/tmp``, ``/var/tmp``, ``HOME`` and ``/dev/shm``. Volumes and secret files are
placed into it after provisioning; :meth:`RootFs.seal` then makes it read-only, and the
program's init pivots into it (:mod:`._enter`).

Host directories are bound read-only at once, so nothing the runtime creates below the
root ever lands on the host's disk; mount points and files go only where one of the
root's own memory file systems lies.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from securetf.errors import UsageError
from securetf.policy import Tmpfs, User
from securetf.runtime import _linux
from securetf.runtime._view import HOME, View

#: The root's own memory: the skeleton, the copied /etc and the policy's files.
ROOT_SIZE = "64m"
#: A tmpfs for secret files whose directory lies in a read-only part of the view.
FILES_SIZE = "16m"
#: Device nodes bound from the host; nothing else of /dev (no disks, no /dev/fuse).
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}

#: The name of the program's account (its uid and gid come from the policy's ``user``).
ACCOUNT = "app"
#: Files only: the program has no DNS (its network namespace reaches only what the
#: policy allows), and its host names are in its /etc/hosts.
NSSWITCH = "".join(
    f"{db}: files\n"
    for db in ("passwd", "group", "shadow", "hosts", "networks", "protocols", "services")
)
LOOPBACK_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"


def _parts(path: str) -> tuple[str, ...]:
    return PurePosixPath(path).parts


def accounts(user: User) -> tuple[str, str]:
    """``/etc/passwd`` and ``/etc/group``: root, the program's account, nobody.

    The program's name resolves (``getpass.getuser()``, ``id``), with HOME as its home.
    """
    passwd = (
        f"root:x:0:0:root:/nonexistent:/bin/false\n"
        f"{ACCOUNT}:x:{user.uid}:{user.gid}:{ACCOUNT}:{HOME}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    groups = {0: "root", user.gid: ACCOUNT, 65534: "nogroup"}
    group = "".join(f"{name}:x:{gid}:\n" for gid, name in groups.items())
    return passwd, group


def _memory(sizes: Tmpfs) -> dict[str, tuple[str, int, bool]]:
    """The program's writable memory: path -> (size, mode, whether the program owns it)."""
    return {
        "/tmp": (sizes.tmp, 0o1777, False),  # noqa: S108 - the program's own, in memory
        "/var/tmp": (sizes.var_tmp, 0o1777, False),  # noqa: S108
        HOME: (sizes.home, 0o700, True),
        "/dev/shm": (sizes.shm, 0o1777, False),  # noqa: S108
    }


@dataclass
class RootFs:
    """The root at ``path`` (a tmpfs the caller unmounts, with everything below it)."""

    path: Path
    view: View
    user: User
    """Who the program is: owner of its HOME and its secret files."""
    writable: frozenset[str]
    """The program's memory file systems (view paths)."""
    _ours: set[int] = field(default_factory=set)
    """Devices of the memory file systems below the root, where the runtime may write."""
    _files: list[Path] = field(default_factory=list)
    """Memory over read-only directories, for secret files: read-only once sealed."""

    def at(self, path: str) -> Path:
        """The runtime's path of the view's absolute ``path``."""
        return self.path / path.lstrip("/")

    @classmethod
    def build(cls, path: Path, view: View, sizes: Tmpfs, app_copy: Path, user: User) -> RootFs:
        """The skeleton: system, Python environment, /etc, the app copy, /dev, memory."""
        memory = _memory(sizes)
        fs = cls(path, view, user, frozenset(memory))
        _linux.mount_tmpfs(path, size=ROOT_SIZE, mode=0o755)
        fs._ours.add(os.stat(path).st_dev)
        for link, pointee in view.links.items():
            os.symlink(pointee, fs.at(link))
        # Parents before children: a Python environment under HOME goes into its tmpfs.
        mounts: list[tuple[str, Path | None]] = [(d, Path(d)) for d in view.binds]
        mounts += [(f"/etc/{d}", Path(f"/etc/{d}")) for d in view.etc_dirs]
        mounts += [(p, None) for p in memory]
        if view.image is not None:
            mounts += [(r, view.host_path(r)) for r in view.image.roots]
        for where, source in sorted(mounts, key=lambda m: _parts(m[0])):
            target = fs.at(where)
            if source is not None:
                fs._bind_point(where, source.is_dir())
                _linux.bind(source, target)
            else:
                target.mkdir(parents=True, exist_ok=True)
                size, mode, owned = memory[where]
                owner = (user.uid, user.gid) if owned else None
                _linux.mount_tmpfs(target, size=size, mode=mode, owner=owner)
                fs._ours.add(os.stat(target).st_dev)
        fs._etc()
        fs._dev()
        for kernel in ("/proc", "/sys"):
            fs.at(kernel).mkdir(mode=0o555)
        app = fs.mountpoint(view.app)
        _linux.bind(app_copy, app, read_only=False)  # read-only once sealed
        fs._ours.add(os.stat(app).st_dev)  # files of the policy may go into the app too
        return fs

    def _bind_point(self, where: str, directory: bool) -> None:
        """What a bind of ``where`` needs: a directory or a file, made in memory where the
        view has none yet (a host directory is read-only from the start)."""
        target = self.at(where)
        if target.exists() and target.is_dir() == directory:
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if directory:
                target.mkdir()
            else:
                target.touch()
        except OSError as exc:
            raise UsageError(
                f"cannot show {where} in the program's view: {exc.strerror} (it would lie "
                "inside a read-only part of the view, such as the system's directories)"
            ) from None

    def _etc(self) -> None:
        etc = self.at("/etc")
        etc.mkdir(exist_ok=True)
        for name in self.view.etc_files:
            source, target = Path("/etc", name), etc / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copyfile(source, target)
                target.chmod(0o644)
        passwd, group = accounts(self.user)
        for name, text in (
            ("passwd", passwd),
            ("group", group),
            ("nsswitch.conf", NSSWITCH),
            ("hosts", LOOPBACK_HOSTS),
        ):
            self.write_etc(name, text)

    def write_etc(self, name: str, text: str) -> None:
        target = self.at("/etc") / name
        target.unlink(missing_ok=True)
        target.write_text(text)
        target.chmod(0o644)

    def _dev(self) -> None:
        dev = self.at("/dev")
        dev.mkdir(exist_ok=True)
        for name in DEV_NODES:
            if os.path.exists(f"/dev/{name}"):
                (dev / name).touch()
                _linux.bind(Path("/dev", name), dev / name)
        for name, target in DEV_LINKS.items():
            os.symlink(target, dev / name)

    def _in_memory(self, path: Path) -> bool:
        """Whether the nearest existing directory of ``path`` is one of our tmpfs.

        A symbolic link on the way is refused: one with an absolute target would lead the
        runtime out of the root, onto the host.
        """
        for step in [*reversed(path.relative_to(self.path).parents), path.relative_to(self.path)]:
            if (self.path / step).is_symlink():
                raise UsageError(f"/{step} is a symbolic link in the program's view")
        while not path.exists():
            path = path.parent
        return os.stat(path).st_dev in self._ours

    def mountpoint(self, path: str) -> Path:
        """An empty directory at the view's ``path`` for a volume: only in memory."""
        target = self.at(path)
        if not self._in_memory(target):
            raise UsageError(
                f"the policy mounts a volume at {path}, inside a read-only part of the "
                "program's view (the system, the Python environment or a volume): choose "
                "another path (docs/runtime.md)"
            )
        target.mkdir(parents=True, exist_ok=True)
        return target

    def place(self, path: str, content: bytes) -> None:
        """A secret file at the view's ``path``, in memory, the program's own (mode 0600):
        no other user may read it.

        Its directory is created in memory; where it lies in a read-only part of the view,
        a tmpfs is mounted over it (hiding what the directory held, as for a volume).
        """
        target = self.at(path)
        if self._in_memory(target.parent):
            target.parent.mkdir(parents=True, exist_ok=True)
        elif target.parent.is_dir():
            _linux.mount_tmpfs(target.parent, size=FILES_SIZE, mode=0o755)
            self._ours.add(os.stat(target.parent).st_dev)
            self._files.append(target.parent)
        else:
            raise UsageError(f"cannot place the file {path}: its directory is not in memory")
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.fchown(fd, self.user.uid, self.user.gid)
        with os.fdopen(fd, "wb") as f:
            f.write(content)

    def give_app(self, app_copy: Path) -> None:
        """The app copy becomes the program's, so that it reads what the operator could
        (a file of mode 0600, say); the measured modes stay, and the mount is read-only.
        Never below a mount point (a volume inside the app is the shield's to show)."""
        device = os.stat(app_copy).st_dev
        for directory, dirs, names in os.walk(app_copy):
            dirs[:] = [d for d in dirs if os.lstat(os.path.join(directory, d)).st_dev == device]
            for name in [directory, *(os.path.join(directory, n) for n in names)]:
                os.lchown(name, self.user.uid, self.user.gid)

    def seal(self) -> None:
        """Read-only from now on, but for the program's memory and its read-write volumes."""
        for directory in [self.at(self.view.app), *self._files, self.path]:
            _linux.remount_read_only(directory)

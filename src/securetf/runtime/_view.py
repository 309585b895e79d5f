"""What the program sees of the file system, and where its ``command[0]`` lies in it.

The program's view (docs/runtime.md, "The program's view") shows, read-only and at their
own paths, the host's system directories and the Python environment securetf runs in;
a minimal ``/etc``; its app; and nothing else of the host. This module decides what that
is and resolves ``command[0]`` inside it, the same way for ``securetf measure`` and for
``securetf run`` (both measure the result). It mounts nothing: :mod:`._rootfs` does.
"""

from __future__ import annotations

import os
import posixpath
import site
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securetf.envimage import ImageMeta
from securetf.envimage._site import pth_dirs, under
from securetf.errors import UsageError

#: Where the program of an ``--app`` directory sees its code; its working directory.
APP = "/app"
#: The program's HOME: a memory file system of its own.
HOME = "/root"
#: The system's directories; those that exist are shown (a symbolic link as a link).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The PATH after the bin directory of securetf's own Python environment.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Of the host's /etc, only what dynamic linking, TLS and C libraries need: copied files
#: and read-only directories. Accounts, name service and hosts are the runtime's own.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "host.conf",
    "gai.conf",
    "protocols",
    "services",
    "networks",
    "mime.types",
    "localtime",
    "timezone",
    "os-release",
    "ssl/openssl.cnf",
)
ETC_DIRS = ("ld.so.conf.d", "alternatives", "ssl/certs", "pki/tls/certs", "pki/ca-trust", "fonts")


def default_path(image: ImageMeta | None = None) -> str:
    """The program's PATH when the policy sets none: the environment image's programs, or
    else securetf's Python environment, first."""
    first = list(image.path) if image is not None else [str(Path(sys.prefix) / "bin")]
    return ":".join(dict.fromkeys([*first, *SYSTEM_PATH.split(":")]))


def python_dirs() -> list[str]:
    """securetf's Python environment: its prefixes, the real interpreter's directory, and
    what the site directories' ``.pth`` files add."""
    prefixes = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    dirs = [*prefixes, str(Path(os.path.realpath(sys.executable)).parent)]
    dirs += pth_dirs(site.getsitepackages(prefixes=list(dict.fromkeys(prefixes))))
    return dirs


def _minimal(dirs: Iterable[str]) -> tuple[str, ...]:
    """The directories that are not inside another one of them, sorted."""
    kept: list[str] = []
    for d in sorted({posixpath.normpath(d) for d in dirs}):
        if d != "/" and not any(under(d, k) for k in kept):
            kept.append(d)
    return tuple(kept)


@dataclass(frozen=True)
class View:
    """The read-only part of the program's file system.

    Host directories are shown at their own paths (``binds``), top-level symbolic links
    are kept as links (``/bin -> usr/bin``), and the app is shown at ``app``.
    """

    binds: tuple[str, ...]
    links: Mapping[str, str] = field(default_factory=dict)
    etc_files: tuple[str, ...] = ()
    etc_dirs: tuple[str, ...] = ()
    app: str = APP
    app_source: Path | None = None
    """The host directory that holds the app; None while it is not known (code volumes)."""
    image: ImageMeta | None = None
    """The environment image, whose roots the view shows in place of the host's."""
    image_source: Path | None = None
    """Where the runtime mounted the image; None while it is not mounted (measuring)."""

    def in_image(self, path: str) -> bool:
        return self.image is not None and any(under(path, r) for r in self.image.roots)

    def _follow_links(self, path: str) -> str:
        for _ in range(8):
            top = "/" + path.lstrip("/").split("/", 1)[0]
            target = self.links.get(top)
            if target is None:
                return path
            path = posixpath.normpath(posixpath.join("/", target, path[len(top) :].lstrip("/")))
        return path

    def host_path(self, path: str) -> Path | None:
        """Where the view's absolute ``path`` lies on the host; None if not in the view."""
        path = self._follow_links(posixpath.normpath(path))
        if under(path, self.app):
            if self.app_source is None:
                return None
            return self.app_source / posixpath.relpath(path, self.app)
        if self.in_image(path):
            return None if self.image_source is None else self.image_source / path.lstrip("/")
        shown = any(under(path, d) for d in self.binds)
        shown |= path in {f"/etc/{f}" for f in self.etc_files}
        shown |= any(under(path, f"/etc/{d}") for d in self.etc_dirs)
        return Path(path) if shown else None

    def _runnable_in_image(self, path: str) -> bool:
        """From the image's own list of its programs: the same mounted or not."""
        if self.image is None:
            return False
        for _ in range(8):
            entry = self.image.executables.get(path)
            if entry is None:
                return False
            if "link" not in entry:
                return bool(entry.get("mode", 0) & 0o111)
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry["link"]))
            path = self._follow_links(path)
            if not self.in_image(path):
                return False  # a link out of the image leads to no measured program
        return False

    def _runnable(self, path: str) -> bool:
        path = self._follow_links(posixpath.normpath(path))
        if self.in_image(path):
            return self._runnable_in_image(path)
        host = self.host_path(path)
        if host is None or not host.is_file() or not os.access(host, os.X_OK):
            return False
        if under(posixpath.normpath(path), self.app):
            return True  # the app holds no symbolic links (measure refuses them)
        real = os.path.realpath(host)
        return self.host_path(real) == Path(real)  # a link must not lead out of the view

    def executable(self, name: str, search_path: str) -> str:
        """``command[0]`` as the program's ``execvp`` finds it in this view: an absolute path.

        A name with a ``/`` is taken relative to the app (where the program starts); one
        without is looked up on ``search_path``, never in the working directory. Where the
        app is not known yet (code volumes), a name inside it is taken as it is.
        """
        if "/" in name:
            path = posixpath.normpath(posixpath.join(self.app, name))
            if self._runnable(path) or (self.app_source is None and under(path, self.app)):
                return path
            raise UsageError(
                f"the command {name!r} is not an executable file in the program's view"
                f" (it would run {path})"
            )
        for directory in search_path.split(":"):
            candidate = posixpath.join(directory, name)
            if self._runnable(candidate):
                return candidate
        raise UsageError(
            f"the command {name!r} is not on the program's PATH ({search_path}) in its view: "
            "give the policy's 'path', or an absolute command, that finds it in the system's "
            "directories, securetf's Python environment or the app (docs/runtime.md)"
        )


def system_view(
    *,
    app: str = APP,
    app_source: Path | None = None,
    image: ImageMeta | None = None,
    image_source: Path | None = None,
) -> View:
    """The view securetf gives programs on this machine: with ``image``, the environment
    image's roots in place of securetf's own Python environment."""
    links: dict[str, str] = {}
    dirs: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            links[d] = os.readlink(d)
        elif os.path.isdir(d):
            dirs.append(d)
    view = View(_minimal(dirs), links)
    for d in python_dirs() if image is None else ():
        # The environment as the program names it, and where it really lies.
        for candidate in (posixpath.normpath(d), os.path.realpath(d)):
            if os.path.isdir(candidate) and view.host_path(candidate) is None:
                view = View(_minimal([*view.binds, candidate]), links)
    etc_files = tuple(f for f in ETC_FILES if os.path.lexists(f"/etc/{f}"))
    etc_dirs = tuple(d for d in ETC_DIRS if os.path.isdir(f"/etc/{d}"))
    return View(view.binds, links, etc_files, etc_dirs, app, app_source, image, image_source)

"""``securetf env pack``: a Python environment turned into a measured, read-only image.

The image holds the environment at the absolute paths it was built for (scripts name
their interpreter by such paths, and interpreters their libraries): for a venv, the venv,
its base interpreter, that interpreter's standard library and ``libpython``, and the
directories its ``.pth`` files add (editable installs); for a plain prefix, the prefix.
A venv's base ``site-packages`` is left out unless the venv includes system site packages.
Files are taken as hard links where the image's directory shares their file system, else
copied, into a staging tree beside the image; nothing of the source is changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securetf.envimage import _erofs
from securetf.envimage._format import (
    CHUNK_SIZE,
    ImageMeta,
    Layout,
    measurement_of,
)
from securetf.envimage._site import pth_dirs, under
from securetf.errors import UsageError

log = logging.getLogger("securetf.envimage")
_VERSION_DIR = re.compile(r"\Apython(\d+\.\d+)\Z")


@dataclass(frozen=True)
class Environment:
    """What an image of a Python environment holds."""

    roots: tuple[str, ...]
    path: tuple[str, ...]
    python: str
    excluded: tuple[str, ...]
    """Absolute paths left out (with every pattern of ``--exclude``)."""


def _read_cfg(prefix: Path) -> dict[str, str]:
    cfg: dict[str, str] = {}
    for line in (prefix / "pyvenv.cfg").read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip().lower()] = value.strip()
    return cfg


def _python_version(lib: Path) -> str:
    found = sorted(m.group(1) for d in _listdir(lib) if (m := _VERSION_DIR.match(d)))
    if len(found) != 1:
        raise UsageError(
            f"cannot tell the Python version of {lib.parent}: expected one lib/pythonX.Y "
            f"directory, found {len(found)}"
        )
    return found[0]


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def describe(prefix: Path, exclude: Sequence[str] = ()) -> Environment:
    """What an image of the environment at ``prefix`` holds (nothing is read but names)."""
    prefix = Path(os.path.abspath(prefix))
    if not prefix.is_dir():
        raise UsageError(f"{prefix} is not a directory: give a venv or a Python prefix")
    version = _python_version(prefix / "lib")
    python = next(
        (
            prefix / "bin" / n
            for n in ("python", "python3", f"python{version}")
            if os.path.lexists(prefix / "bin" / n)
        ),
        None,
    )
    if python is None:
        raise UsageError(f"{prefix} has no bin/python: give a venv or a Python prefix")
    roots = [str(prefix)]
    excluded = list(exclude)
    site_dirs = [f"{prefix}/lib/python{version}/site-packages"]
    if (prefix / "pyvenv.cfg").is_file():
        cfg = _read_cfg(prefix)
        interpreter = os.path.realpath(python)
        if not os.path.isfile(interpreter):
            raise UsageError(f"the venv's interpreter {interpreter} does not exist")
        base = Path(cfg.get("home", os.path.dirname(interpreter))).parent
        stdlib = base / "lib" / f"python{version}"
        if not (stdlib / "os.py").is_file():
            raise UsageError(f"the venv's base Python has no standard library at {stdlib}")
        roots += [interpreter, str(stdlib)]
        roots += [str(p) for p in sorted((base / "lib").glob(f"libpython{version}*.so*"))]
        if cfg.get("include-system-site-packages", "false").lower() == "true":
            site_dirs.append(str(stdlib / "site-packages"))
        else:
            excluded.append(str(stdlib / "site-packages"))
    for extra in pth_dirs(site_dirs):
        if not any(under(extra, r) for r in roots):
            roots.append(extra)
    roots = _minimal(roots)
    return Environment(tuple(roots), (str(prefix / "bin"),), str(python), tuple(excluded))


def _minimal(paths: Iterable[str]) -> list[str]:
    kept: list[str] = []
    for p in sorted({posixpath.normpath(p) for p in paths}):
        if p == "/":
            raise UsageError("an environment image cannot hold the whole file system")
        if not any(under(p, k) for k in kept):
            kept.append(p)
    return kept


class _Stager:
    """Links (or copies) the environment into a staging tree, at its absolute paths."""

    def __init__(self, stage: Path, excluded: Sequence[str]) -> None:
        self.stage = stage
        self.excluded = excluded
        self.linkable = True
        self.private: list[str] = []
        """Files others may not read: all files are root's in the image, and the program
        is not root, so it will not read these."""

    def _skip(self, path: str) -> bool:
        return any(under(path, e) or fnmatch.fnmatchcase(path, e) for e in self.excluded)

    def _file(self, source: str, target: Path) -> None:
        if self.linkable:
            try:
                os.link(source, target, follow_symlinks=False)
                return
            except OSError:
                self.linkable = False
        shutil.copy2(source, target, follow_symlinks=False)

    def _entry(self, source: str, target: Path) -> bool:
        """Stage one non-directory entry; False for a directory."""
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            return False
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
            os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            self._file(source, target)
            if not st.st_mode & stat.S_IROTH:
                self.private.append(source)
        else:
            raise UsageError(f"{source} is not a file, directory or link: an image cannot hold it")
        return True

    def add(self, root: str) -> None:
        target = self.stage / root.lstrip("/")
        self._parents(target.parent)
        if self._entry(root, target):
            return
        dirs: list[tuple[Path, os.stat_result]] = []
        for current, subdirs, names in os.walk(root):
            if self._skip(current):
                subdirs[:] = []
                continue
            here = self.stage / current.lstrip("/")
            here.mkdir()
            dirs.append((here, os.stat(current)))
            for name in sorted(names):
                full = os.path.join(current, name)
                if not self._skip(full):
                    self._entry(full, here / name)
            kept = []
            for name in sorted(subdirs):
                full = os.path.join(current, name)
                if os.path.islink(full):  # os.walk lists links to directories as directories
                    if not self._skip(full):
                        self._entry(full, here / name)
                else:
                    kept.append(name)
            subdirs[:] = kept
        for here, st in reversed(dirs):
            os.chmod(here, stat.S_IMODE(st.st_mode))
            os.utime(here, ns=(st.st_mtime_ns, st.st_mtime_ns))

    def _parents(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir(mode=0o755)


def executables(stage: Path, env: Environment) -> dict[str, dict[str, Any]]:
    """Every entry of the environment's program directories, and each link's targets."""
    found: dict[str, dict[str, Any]] = {}
    pending = [
        posixpath.join(d, n) for d in env.path for n in sorted(_listdir(stage / d.lstrip("/")))
    ]
    pending.append(env.python)
    while pending:
        path = pending.pop()
        if path in found:
            continue
        staged = stage / path.lstrip("/")
        try:
            st = os.lstat(staged)
        except OSError:
            continue  # a link that leads out of the image: resolved as no program
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(staged)
            found[path] = {"link": link}
            pending.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), link)))
        elif stat.S_ISREG(st.st_mode):
            found[path] = {"mode": stat.S_IMODE(st.st_mode)}
    return dict(sorted(found.items()))


def pack(prefix: Path, image: Path, exclude: Sequence[str] = ()) -> bytes:
    """Pack the environment at ``prefix`` into ``image``; return its measurement."""
    env = describe(prefix, exclude)
    image = Path(os.path.abspath(image))
    if image.exists():
        raise UsageError(f"{image} exists already; choose another path or remove it")
    if not image.parent.is_dir():
        raise UsageError(f"the directory {image.parent} does not exist")
    if any(under(str(image), r) for r in env.roots):
        raise UsageError(f"the image {image} cannot lie inside the environment it packs")
    work = Path(tempfile.mkdtemp(prefix=".securetf-pack-", dir=image.parent))
    try:
        stage = work / "tree"
        stage.mkdir(mode=0o755)
        stager = _Stager(stage, env.excluded)
        for root in env.roots:
            stager.add(root)
        _fix_times(stage, env.roots)
        if stager.private:
            shown = ", ".join(stager.private[:5])
            log.warning(
                "%d files of the environment are not readable by others (%s%s): the program, "
                "which is not root, cannot read them from the image; make them readable "
                "(chmod o+r) and pack again if it needs them",
                len(stager.private),
                shown,
                ", ..." if len(stager.private) > 5 else "",
            )
        meta = ImageMeta(env.roots, env.path, executables(stage, env), env.python)
        data = work / "image"
        _erofs.build(stage, data)
        shutil.rmtree(stage)
        digest = _seal(data, meta.to_bytes())
        os.replace(data, image)
        return digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fix_times(stage: Path, roots: Sequence[str]) -> None:
    """The staging tree's own directories (the roots' parents) get time 0 and mode 0755:
    an image depends on the environment, not on when it was staged."""
    for current, _dirs, _names in os.walk(stage):
        path = "/" + os.path.relpath(current, stage).lstrip(".")
        if not any(under(path, r) for r in roots):
            os.chmod(current, 0o755)  # noqa: S103 - an image's public directories
            os.utime(current, ns=(0, 0))


def _seal(data: Path, meta: bytes) -> bytes:
    """Pad the file system to whole chunks and append meta, hash list and trailer."""
    size = data.stat().st_size
    count = -(-size // CHUNK_SIZE)
    hashes = bytearray()
    with open(data, "r+b") as f:
        f.truncate(count * CHUNK_SIZE)
        for _ in range(count):
            hashes += hashlib.sha256(f.read(CHUNK_SIZE)).digest()
        layout = Layout(CHUNK_SIZE, size, len(meta), count)
        trailer = layout.trailer()
        f.seek(count * CHUNK_SIZE)
        f.write(meta + bytes(hashes) + trailer)
        f.flush()
        os.fsync(f.fileno())
    return measurement_of(trailer, meta, bytes(hashes))

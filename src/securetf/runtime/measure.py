"""The measurement of a service: what the CAS compares with the policy before releasing
anything (docs/runtime.md, "Measurement").

``measurement = SHA-256("securetf/v2 measurement\\0" || canonical JSON of
{"runtime": securetf version, "command": [...], "executable": command[0] resolved,
"dirs": [[path, mode], ...], "files": [[path, mode, size, sha256 hex], ...]})`` over the
application directory, with paths relative and sorted, modes as permission bits; with an
environment image, ``"env_image": "sha256:..."`` (its measurement) joins the document. Symbolic
links and special files are refused. ``executable`` is the absolute path ``command[0]``
resolves to in the program's view with the program's PATH (:mod:`._view`), the file the
program's ``execvp`` will start. :func:`snapshot` copies the tree while hashing it, and the
program runs from the copy: nothing can change the code between measuring and starting.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from securetf import __version__
from securetf.envimage import EnvImage
from securetf.errors import UsageError
from securetf.policy import canonical_json
from securetf.runtime._view import APP, default_path, system_view

_PREFIX = b"securetf/v2 measurement\x00"
_LAUNCHER_PREFIX = b"securetf/v2 launcher\x00"
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Measurement:
    digest: bytes
    executable: str
    """``command[0]`` as measured: what the runtime starts."""


def _walk(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int, Path]]]:
    if not root.is_dir():
        raise UsageError(f"the application directory {root} does not exist")
    dirs: list[tuple[str, int]] = []
    files: list[tuple[str, int, Path]] = []
    for current, subdirs, names in os.walk(root):
        subdirs.sort()
        base = Path(current)
        for name in sorted(subdirs + names):
            full = base / name
            st = full.lstat()
            rel = full.relative_to(root).as_posix()
            if stat.S_ISDIR(st.st_mode):
                dirs.append((rel, stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                files.append((rel, stat.S_IMODE(st.st_mode), full))
            else:
                raise UsageError(
                    f"{full} is not a regular file or directory; the app may not hold it"
                )
    return dirs, files


def executable(
    command: Sequence[str],
    *,
    path: str | None,
    app: Path | None,
    app_at: str | None = None,
    image: EnvImage | None = None,
) -> str:
    """``command[0]`` resolved in the program's view, with its PATH (``path`` or the default).

    ``app`` is the host directory holding the app (None for code volumes, not yet
    decrypted); ``app_at`` is where the program sees it (default ``/app``); ``image`` the
    environment image the view shows in place of securetf's own Python environment.
    """
    meta = image.meta if image is not None else None
    view = system_view(app=app_at or APP, app_source=app, image=meta)
    return view.executable(command[0], path or default_path(meta))


def _with_image(doc: dict[str, object], image: EnvImage | None) -> bytes:
    if image is not None:
        doc["env_image"] = "sha256:" + image.digest.hex()
    return canonical_json(doc)


def _digest(
    command: Sequence[str],
    exe: str,
    dirs: list[tuple[str, int]],
    files: list[list[object]],
    image: EnvImage | None,
) -> bytes:
    doc: dict[str, object] = {
        "runtime": __version__,
        "command": list(command),
        "executable": exe,
        "dirs": [list(d) for d in dirs],
        "files": files,
    }
    return hashlib.sha256(_PREFIX + _with_image(doc, image)).digest()


def measure(
    app: Path, command: Sequence[str], *, path: str | None = None, image: EnvImage | None = None
) -> bytes:
    """The measurement of ``app`` run with ``command`` and the program's PATH ``path``,
    on the environment ``image`` if one is given."""
    dirs, files = _walk(app)
    exe = executable(command, path=path, app=app, image=image)
    entries: list[list[object]] = []
    for rel, mode, full in files:
        h = hashlib.sha256()
        size = 0
        with open(full, "rb") as f:
            while block := f.read(_BLOCK):
                h.update(block)
                size += len(block)
        entries.append([rel, mode, size, h.hexdigest()])
    return _digest(command, exe, dirs, entries, image)


def snapshot(
    app: Path,
    dest: Path,
    command: Sequence[str],
    *,
    path: str | None = None,
    app_at: str | None = None,
    image: EnvImage | None = None,
) -> Measurement:
    """Copy ``app`` into the empty directory ``dest`` while measuring the copied bytes.

    ``command[0]`` is resolved against the copy (seen at ``app_at``), which is what the
    program runs.
    """
    dirs, files = _walk(app)
    for rel, _ in dirs:
        (dest / rel).mkdir()
    entries: list[list[object]] = []
    for rel, mode, full in files:
        h = hashlib.sha256()
        size = 0
        with open(full, "rb") as src, open(dest / rel, "wb") as out:
            while block := src.read(_BLOCK):
                h.update(block)
                out.write(block)
                size += len(block)
        os.chmod(dest / rel, mode)
        entries.append([rel, mode, size, h.hexdigest()])
    for rel, mode in dirs:
        os.chmod(dest / rel, mode)
    exe = executable(command, path=path, app=dest, app_at=app_at, image=image)
    return Measurement(_digest(command, exe, dirs, entries, image), exe)


def launcher(
    command: Sequence[str],
    code_volume: str,
    *,
    code_path: str,
    path: str | None = None,
    image: EnvImage | None = None,
) -> Measurement:
    """The measurement of a service whose code ships in a sealed volume.

    The code is encrypted until the CAS releases the volume's key, so the evidence
    measures what runs before that: the runtime, the command, where ``command[0]``
    resolves (a name inside the code, at ``code_path``, is taken as it is) and the name of
    the code volume. The code's integrity then rests on the volume (authenticated
    encryption under a key only the CAS and the owners hold, at the tag the CAS records);
    the runtime still measures the decrypted code it copies and runs, and logs that
    measurement.
    """
    exe = executable(command, path=path, app=None, app_at=code_path, image=image)
    doc: dict[str, object] = {
        "runtime": __version__,
        "command": list(command),
        "executable": exe,
        "code_volume": code_volume,
    }
    digest = hashlib.sha256(_LAUNCHER_PREFIX + _with_image(doc, image)).digest()
    return Measurement(digest, exe)


def measure_launcher(
    command: Sequence[str],
    code_volume: str,
    *,
    code_path: str,
    path: str | None = None,
    image: EnvImage | None = None,
) -> bytes:
    """The launcher measurement (see :func:`launcher`) that ``securetf measure`` prints."""
    return launcher(command, code_volume, code_path=code_path, path=path, image=image).digest


def measurement_text(digest: bytes) -> str:
    return "sha256:" + digest.hex()

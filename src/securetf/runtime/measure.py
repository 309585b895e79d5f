"""The measurement of a service: what the CAS compares with the policy before releasing
anything (docs/runtime.md, "Measurement").

``measurement = SHA-256("securetf/v1 measurement\\0" || canonical JSON of
{"runtime": securetf version, "command": [...], "dirs": [[path, mode], ...],
"files": [[path, mode, size, sha256 hex], ...]})`` over the application directory, with
paths relative and sorted, modes as permission bits. Symbolic links and special files are
refused. :func:`snapshot` copies the tree while hashing it, and the program runs from the
copy: nothing can change the code between measuring and starting.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from securetf import __version__
from securetf.errors import UsageError
from securetf.policy import canonical_json

_PREFIX = b"securetf/v1 measurement\x00"
_BLOCK = 1024 * 1024


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


def _digest(
    command: Sequence[str], dirs: list[tuple[str, int]], files: list[list[object]]
) -> bytes:
    doc = {"runtime": __version__, "command": list(command), "dirs": dirs, "files": files}
    return hashlib.sha256(_PREFIX + canonical_json(doc)).digest()


def measure(app: Path, command: Sequence[str]) -> bytes:
    """The measurement of ``app`` run with ``command``."""
    dirs, files = _walk(app)
    entries: list[list[object]] = []
    for rel, mode, full in files:
        h = hashlib.sha256()
        size = 0
        with open(full, "rb") as f:
            while block := f.read(_BLOCK):
                h.update(block)
                size += len(block)
        entries.append([rel, mode, size, h.hexdigest()])
    return _digest(command, [list(d) for d in dirs], entries)  # type: ignore[misc]


def snapshot(app: Path, dest: Path, command: Sequence[str]) -> bytes:
    """Copy ``app`` into the empty directory ``dest`` while measuring the copied bytes."""
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
    return _digest(command, [list(d) for d in dirs], entries)  # type: ignore[misc]


def measure_launcher(command: Sequence[str], code_volume: str) -> bytes:
    """The measurement of a service whose code ships in a sealed volume.

    The code is encrypted until the CAS releases the volume's key, so the evidence
    measures what runs before that: the runtime, the command and the name of the code
    volume. The code's integrity then rests on the volume (authenticated encryption
    under a key only the CAS and the owners hold, at the tag the CAS records); the runtime
    still measures the decrypted code it copies and runs, and logs that measurement.
    """
    doc = {"runtime": __version__, "command": list(command), "code_volume": code_volume}
    return hashlib.sha256(b"securetf/v1 launcher\x00" + canonical_json(doc)).digest()


def measurement_text(digest: bytes) -> str:
    return "sha256:" + digest.hex()

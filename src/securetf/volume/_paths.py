"""Paths inside a volume: POSIX, relative, normalized, no way out of the tree."""

from __future__ import annotations

import itertools

from securetf.errors import UsageError
from securetf.volume._settings import MAX_NAME_BYTES, MAX_PATH_BYTES


def normalize(path: str) -> str:
    """Return ``path`` as stored in a volume ("a/b.csv"), or raise :class:`UsageError`.

    A leading "/" is accepted and dropped; "." and ".." components, empty components,
    NUL bytes and over-long names are refused.
    """
    stripped = path.lstrip("/")
    parts = stripped.split("/")
    if not stripped or any(p in ("", ".", "..") for p in parts) or "\0" in stripped:
        raise UsageError(f"invalid path inside a volume: {path!r} (use a/b/c, no '.' or '..')")
    if len(stripped.encode()) > MAX_PATH_BYTES or any(
        len(p.encode()) > MAX_NAME_BYTES for p in parts
    ):
        raise UsageError(f"path too long for a volume: {path[:80]!r}...")
    return stripped


def parents(path: str) -> list[str]:
    """The ancestors of a normalized path, outermost first ("a/b/c" -> ["a", "a/b"])."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def check_tree(files: list[str], dirs: list[str]) -> None:
    """Refuse file and directory paths (normalized) that no directory tree could hold.

    Each list is sorted without repeats; no path is both a file and a directory; no path
    lies inside a file. Raises :class:`UsageError` naming the first conflict.
    """
    for what, paths in (("file", files), ("directory", dirs)):
        for before, path in itertools.pairwise(paths):
            if before >= path:
                raise UsageError(f"{what} {path} is listed twice or out of order")
    file_set = set(files)
    for path in dirs:
        if path in file_set:
            raise UsageError(f"{path} is both a file and a directory; remove one of them")
    for path in (*files, *dirs):
        for parent in parents(path):
            if parent in file_set:
                raise UsageError(
                    f"{path} lies inside {parent}, which is a file; remove or rename one of them"
                )

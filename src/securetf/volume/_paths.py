"""Paths inside a volume: POSIX, relative, normalized, no way out of the tree."""

from __future__ import annotations

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

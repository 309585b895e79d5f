"""Where a log keeps its entries and hashes, and the in-memory store.

A store holds, for each tile level L, the hashes of the complete subtrees of 256**L
leaves in order: level 0 the leaf hashes, level 1 the roots of full level-0 tiles, and so
on. The full tiles of tlog-tiles are runs of 256 of them; the partial right edge is
whatever follows the last full run. Rows are only ever added, so a hash once written
never changes: a reader may use it without holding a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from securetf.log._errors import AppendConflictError, LogStoreError

__all__ = ["LogStore", "MemoryStore", "StoredHash"]

#: (tile level, index at that level, hash)
StoredHash = tuple[int, int, bytes]


class LogStore(Protocol):
    def size(self) -> int:
        """The number of entries."""
        ...

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes ``start``..``end``-1 at ``level``; :class:`LogStoreError` if any is
        missing."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start``..``end``-1; :class:`LogStoreError` if any is missing."""
        ...

    def append(
        self,
        old_size: int,
        entries: Sequence[bytes],
        hashes: Sequence[StoredHash],
        root: bytes | None = None,
    ) -> None:
        """Add ``entries`` (the first at index ``old_size``) and their ``hashes`` in one
        atomic step, or raise :class:`AppendConflictError` if the log no longer has
        ``old_size`` entries (another writer was first). ``root``: the new tree's root,
        kept by a store that has a place for it (:meth:`securetf.log.sql.SqlLogStore.tip`),
        ignored by the others."""
        ...


class MemoryStore:
    """A store in lists: for tests, tools and short-lived logs."""

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self._levels: list[list[bytes]] = []

    def size(self) -> int:
        return len(self._entries)

    def read_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        row = self._levels[level] if level < len(self._levels) else []
        return _slice(row, start, end, f"hashes at level {level}")

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return _slice(self._entries, start, end, "entries")

    def append(
        self,
        old_size: int,
        entries: Sequence[bytes],
        hashes: Sequence[StoredHash],
        root: bytes | None = None,
    ) -> None:
        if old_size != len(self._entries):
            raise AppendConflictError(
                f"the log has {len(self._entries)} entries, not {old_size}: another writer "
                "appended first; retry"
            )
        # Check every index first, so a refused append leaves nothing behind.
        lengths = [len(row) for row in self._levels]
        for level, index, _ in hashes:
            lengths.extend([0] * (level + 1 - len(lengths)))
            if index != lengths[level]:
                raise LogStoreError(f"hash {level}/{index} would leave a gap in the store")
            lengths[level] += 1
        for level, _, value in hashes:
            self._levels.extend([] for _ in range(level + 1 - len(self._levels)))
            self._levels[level].append(value)
        self._entries.extend(entries)


def _slice(row: list[bytes], start: int, end: int, what: str) -> list[bytes]:
    if not 0 <= start <= end <= len(row):
        raise LogStoreError(f"the log store has no {what} {start}..{end - 1}")
    return row[start:end]

"""Writing one sealed file: a new object version, random writes, bounded memory.

A write never touches a committed object: it builds a new object version under a fresh
key. Full chunks are encrypted to storage once the in-memory cache is over its budget,
and each chunk index is encrypted at most once per key. A write into a chunk already
stored (rare: a seek back over more than the cache) moves the file to yet another fresh
key, copying what was stored, so nonces never repeat and stale chunks cannot be replayed.
"""

from __future__ import annotations

from collections.abc import Callable

from securetf.errors import UsageError
from securetf.volume._objects import FileEntry, root_of
from securetf.volume._padding import padded_size
from securetf.volume._reader import ObjectSource, SeekableFile
from securetf.volume._settings import WRITE_CACHE_BYTES
from securetf.volume._store import NewObject


class VolumeFileWriter(SeekableFile):
    """A writable binary file inside a volume; ``close()`` hands the new entry to the volume."""

    def __init__(
        self,
        path: str,
        *,
        base: ObjectSource | None,
        new_object: Callable[[], NewObject],
        on_close: Callable[[FileEntry | None], None],
        mode: int,
        append: bool = False,
        cache_bytes: int = WRITE_CACHE_BYTES,
    ) -> None:
        super().__init__()
        self.name = path
        self._base = base
        self._base_limit = base.size if base else 0  # base bytes past this read as zeros
        self._new_object = new_object
        self._on_close = on_close
        self._mode = mode
        self._gen: NewObject = new_object()
        self._stored: dict[int, bytes] = {}  # chunk index -> tag, in the current object
        self._dirty: dict[int, bytearray] = {}
        self._budget = max(2, cache_bytes // self._gen.codec.chunk_size)
        self._size = base.size if base else 0
        self._pos = self._size if append else 0
        self._changed = base is None

    # -- io.RawIOBase ----------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def _length(self) -> int:
        return self._size

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        want = min(len(out), max(0, self._size - self._pos))
        done, c = 0, self._chunk_size()
        while done < want:
            index, offset = divmod(self._pos, c)
            n = min(c - offset, want - done)
            chunk = self._dirty.get(index)
            if chunk is None:
                chunk = self._load(index)
            out[done : done + n] = chunk[offset : offset + n]
            done += n
            self._pos += n
        return done

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        c, total = self._chunk_size(), len(view)
        end = self._pos + total
        # Streaming past the cache's worth of data: whole appended chunks go straight to
        # storage, without a copy (each is stored once, as it would be when evicted).
        streaming = self._pos >= self._size >= self._budget * c
        while view:
            index, offset = divmod(self._pos, c)
            n = min(c - offset, len(view))
            if index in self._stored:
                self._rekey(keep=index)
            elif streaming and n == c and (index + 1) * c < end and index not in self._dirty:
                self._stored[index] = self._gen.write(index, False, view[:n])
                view = view[n:]
                self._pos += n
                continue
            chunk = self._dirty.get(index)
            if chunk is None:
                whole = offset == 0 and n == c
                chunk = bytearray(c) if whole else self._load(index)
                self._dirty[index] = chunk
            chunk[offset : offset + n] = view[:n]
            view = view[n:]
            self._pos += n
        self._size = max(self._size, end)
        self._changed = True
        if len(self._dirty) > self._budget:
            self._evict()
        return total

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size < 0:
            raise UsageError("negative size")
        c = self._chunk_size()
        if size < self._size:
            if any((i + 1) * c >= size for i in self._stored):
                self._rekey(keep=None, new_size=size)
            keep_upto = -(-size // c)
            for i in [i for i in self._dirty if i >= keep_upto]:
                del self._dirty[i]
            index, offset = divmod(size, c)
            if offset and index in self._dirty:
                self._dirty[index][offset:] = bytes(c - offset)
            self._base_limit = min(self._base_limit, size)
        self._size = size
        self._changed = True
        return size

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._on_close(self._finish())
        finally:
            if self._base:
                self._base.close()
            super().close()

    def abort(self) -> None:
        """Drop everything written; the volume keeps the file as it was."""
        if not self.closed:
            self._gen.discard()
            if self._base:
                self._base.close()
            super().close()
            self._on_close(None)  # the volume forgets this writer, keeping the file as it was

    # -- internals ---------------------------------------------------------------------
    def _chunk_size(self) -> int:
        return self._gen.codec.chunk_size

    def _load(self, index: int) -> bytearray:
        """The current plaintext of chunk ``index`` (zeros past the data)."""
        c = self._chunk_size()
        chunk = bytearray(c)
        if index in self._stored:
            self._gen.read_stored(index, memoryview(chunk))
        elif self._base and index * c < self._base_limit:
            self._base.read_into(index, memoryview(chunk)[: self._base.chunk_length(index)])
            valid = self._base_limit - index * c
            if valid < c:
                chunk[valid:] = bytes(c - valid)
        return chunk

    def _evict(self) -> None:
        """Store the lowest full, non-final chunks until the cache is within budget."""
        c = self._gen.codec.chunk_size
        for index in sorted(self._dirty):
            if len(self._dirty) <= self._budget // 2 or (index + 1) * c >= self._size:
                break
            self._stored[index] = self._gen.write(index, False, self._dirty.pop(index))

    def _rekey(self, *, keep: int | None, new_size: int | None = None) -> None:
        """Move every stored chunk to a fresh object and key (see the module docstring)."""
        old, old_stored = self._gen, self._stored
        limit = self._size if new_size is None else new_size
        self._gen, self._stored = self._new_object(), {}
        c = self._gen.codec.chunk_size
        for index in sorted(old_stored):
            if index * c >= limit:
                continue
            chunk = bytearray(c)
            old.read_stored(index, memoryview(chunk))
            if index == keep or (index + 1) * c >= limit:
                self._dirty[index] = chunk
            else:
                self._stored[index] = self._gen.write(index, False, chunk)
        old.discard()

    def _finish(self) -> FileEntry | None:
        gen = self._gen
        if not self._changed:
            gen.discard()
            return None
        c = gen.codec.chunk_size
        padded = padded_size(self._size)
        count = max(1, -(-padded // c))
        tags: list[bytes] = []
        for index in range(count):
            tag = self._stored.get(index)
            if tag is None:
                chunk = self._dirty.pop(index, None)
                if chunk is None:
                    chunk = self._load(index)
                length = min(c, padded - index * c)
                tag = gen.write(index, index == count - 1, memoryview(chunk)[:length])
            tags.append(tag)
        gen.finish(count, padded)
        return FileEntry(self.name, gen.object_id, gen.salt, self._size, self._mode, root_of(tags))

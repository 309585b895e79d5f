"""Reading one sealed file: random access, decrypting only the chunks a read touches."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from securetf.errors import IntegrityError, UsageError
from securetf.volume._objects import ChunkCodec, FileEntry, chunk_count, object_length
from securetf.volume._padding import padded_size

#: Storage chooses what sits at an object's name: never follow a link to elsewhere, and
#: never wait on a FIFO for a writer that storage controls.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def open_exact(path: Path, length: int) -> int:
    """Open the regular file ``path`` that must hold exactly ``length`` bytes, or raise
    :class:`IntegrityError`. Bytes past ``length`` would be read by no chunk, so only this
    check, made on every read path, notices an object that storage extended."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        raise IntegrityError() from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != length:
        os.close(fd)
        raise IntegrityError()
    return fd


class ObjectSource:
    """Decrypted access to the chunks of one committed object, checked to be of exactly
    the length its authenticated size implies."""

    def __init__(self, path: Path, codec: ChunkCodec, size: int) -> None:
        self._fd: int | None = open_exact(path, object_length(size, codec.chunk_size))
        self.codec = codec
        self.size = size
        self.chunk_size = codec.chunk_size
        self.count = chunk_count(size, codec.chunk_size)
        self._padded = padded_size(size)
        self._scratch = bytearray(codec.record_size)

    def chunk_length(self, index: int) -> int:
        return min(self.chunk_size, self._padded - index * self.chunk_size)

    def read_into(self, index: int, out: memoryview) -> bytes:
        """Decrypt chunk ``index`` into ``out``; return its tag."""
        if self._fd is None:
            raise ValueError("I/O operation on closed file")
        last = index == self.count - 1
        return self.codec.read_chunk(
            self._fd, index, last, self.chunk_length(index), self._scratch, out
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SeekableFile(io.RawIOBase):
    """Position handling shared by the volume's file objects; ``_length()`` is the size."""

    _pos: int

    def _length(self) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length()}[whence]
        if base + offset < 0:
            raise UsageError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos


class VolumeFileReader(SeekableFile):
    """A read-only binary file inside a volume (``read``, ``readinto``, ``seek``, ``tell``)."""

    def __init__(self, source: ObjectSource, entry: FileEntry) -> None:
        super().__init__()
        self._src = source
        self.entry = entry
        self.name = entry.path
        self._pos = 0
        self._cache_index = -1
        self._cache = bytearray(source.chunk_size)

    def _length(self) -> int:
        return self.entry.size

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        want = min(len(out), max(0, self.entry.size - self._pos))
        done, c = 0, self._src.chunk_size
        while done < want:
            index, offset = divmod(self._pos, c)
            n = min(c - offset, want - done)
            if offset == 0 and n == c:
                # A whole chunk: decrypt straight into the caller's buffer.
                self._src.read_into(index, out[done : done + c])
            else:
                if index != self._cache_index:
                    self._cache_index = -1
                    self._src.read_into(index, memoryview(self._cache))
                    self._cache_index = index
                out[done : done + n] = self._cache[offset : offset + n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        buf = bytearray(max(0, self.entry.size - self._pos))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def close(self) -> None:
        if not self.closed:
            self._src.close()
        super().close()

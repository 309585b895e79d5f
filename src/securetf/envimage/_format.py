"""The environment image's layout, its measurement, and verified reads of its chunks.

Layout (docs/env-image.md)::

    data      the file system (EROFS), zero-padded to a multiple of chunk_size
    meta      canonical JSON: what the image holds (:class:`ImageMeta`)
    hashes    SHA-256 of each data chunk, in order (32 bytes each)
    trailer   magic(8) chunk_size(u32) data_size(u64) meta_size(u32) chunk_count(u64)

``measurement = SHA-256("securetf/v1 env image\\0" || trailer || meta || hashes)``. The
trailer, meta and hash list are read whole and checked against the measurement the
policy pins before anything else of the image is used; each data chunk is then checked
against its hash when it is read, so a changed byte anywhere fails the read that meets it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securetf.errors import IntegrityError, UsageError

MAGIC = b"STFENV\x00\x01"
TRAILER = struct.Struct(">8sIQIQ")
HASH_SIZE = 32
CHUNK_SIZE = 64 * 1024
_PREFIX = b"securetf/v1 env image\x00"
#: Bounds a reader enforces before it allocates anything an image's trailer asks for.
MAX_META = 16 * 1024 * 1024
MAX_CHUNK = 1024 * 1024
MIN_CHUNK = 4096
#: Verified chunks kept for reads that take part of one (4 MiB at the default size).
_CACHED_CHUNKS = 64


def measurement_text(digest: bytes) -> str:
    return "sha256:" + digest.hex()


def measurement_of(trailer: bytes, meta: bytes, hashes: bytes) -> bytes:
    return hashlib.sha256(_PREFIX + trailer + meta + hashes).digest()


@dataclass(frozen=True)
class ImageMeta:
    """What the image holds, as the runtime and ``securetf measure`` need it unmounted.

    ``roots`` are the absolute paths the image provides (directories or files), shown at
    those paths in the program's view; ``path`` the directories of its programs, first on
    the program's default PATH; ``executables`` every entry of those directories: a
    regular file's mode, or a symbolic link's target.
    """

    roots: tuple[str, ...]
    path: tuple[str, ...]
    executables: dict[str, dict[str, Any]]
    python: str

    def to_bytes(self) -> bytes:
        doc = {
            "format": 1,
            "roots": list(self.roots),
            "path": list(self.path),
            "executables": self.executables,
            "python": self.python,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageMeta:
        try:
            doc = json.loads(data)
            if doc.get("format") != 1:
                raise ValueError("unknown format")
            roots = tuple(str(r) for r in doc["roots"])
            search = tuple(str(p) for p in doc["path"])
            exes = {str(k): dict(v) for k, v in doc["executables"].items()}
            python = str(doc["python"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise IntegrityError("the environment image's description is malformed") from None
        for p in (*roots, *search, *exes, python):
            if not p.startswith("/") or "\x00" in p or "/../" in p + "/" or "//" in p:
                raise IntegrityError(f"the environment image names a bad path: {p!r}")
        return cls(roots, search, exes, python)


@dataclass(frozen=True)
class Layout:
    chunk_size: int
    data_size: int
    meta_size: int
    chunk_count: int

    @property
    def data_padded(self) -> int:
        return self.chunk_count * self.chunk_size

    @property
    def total(self) -> int:
        return self.data_padded + self.meta_size + self.chunk_count * HASH_SIZE + TRAILER.size

    def trailer(self) -> bytes:
        return TRAILER.pack(
            MAGIC, self.chunk_size, self.data_size, self.meta_size, self.chunk_count
        )

    @classmethod
    def parse(cls, raw: bytes, file_size: int) -> Layout:
        magic, chunk, data, meta, count = TRAILER.unpack(raw)
        if magic != MAGIC:
            raise UsageError("not a securetf environment image (made by 'securetf env pack')")
        layout = cls(chunk, data, meta, count)
        if (
            not MIN_CHUNK <= chunk <= MAX_CHUNK
            or chunk & (chunk - 1)
            or meta > MAX_META
            or count != -(-data // chunk)
            or layout.total != file_size
        ):
            raise IntegrityError("the environment image is damaged or truncated")
        return layout


class EnvImage:
    """An image opened for verified reads. :meth:`open` checks everything but the data
    against the expected measurement; :meth:`read` checks each chunk it returns."""

    def __init__(
        self, path: Path, fd: int, layout: Layout, meta: ImageMeta, hashes: bytes, digest: bytes
    ) -> None:
        self.path = path
        self._fd = fd
        self.layout = layout
        self.meta = meta
        self._hashes = hashes
        self.digest = digest
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    @classmethod
    def open(cls, path: Path, expect: bytes | None = None) -> EnvImage:
        """Open ``path``; with ``expect``, refuse an image of another measurement."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UsageError(f"the environment image {path} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot open the environment image {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size < TRAILER.size:
                raise UsageError(f"{path} is not a securetf environment image")
            trailer = os.pread(fd, TRAILER.size, st.st_size - TRAILER.size)
            layout = Layout.parse(trailer, st.st_size)
            tail = _pread_exact(
                fd, layout.meta_size + layout.chunk_count * HASH_SIZE, layout.data_padded
            )
            meta_bytes, hashes = tail[: layout.meta_size], tail[layout.meta_size :]
            digest = measurement_of(trailer, meta_bytes, hashes)
            if expect is not None and digest != expect:
                raise IntegrityError(
                    f"the environment image {path} is {measurement_text(digest)}, but the policy "
                    f"pins {measurement_text(expect)}: give the image the policy names (or, if "
                    "the environment changed on purpose, its owner updates the policy's "
                    "env_image)"
                )
            return cls(path, fd, layout, ImageMeta.from_bytes(meta_bytes), hashes, digest)
        except BaseException:
            os.close(fd)
            raise

    def _check(self, index: int, data: bytes | memoryview) -> None:
        want = self._hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE]
        if hashlib.sha256(data).digest() != want:
            raise IntegrityError(f"chunk {index} of the environment image {self.path} was changed")

    def read_chunk(self, index: int) -> bytes:
        """Chunk ``index`` of the data, verified; :class:`IntegrityError` if it was changed.

        The last few chunks read stay cached, verified: small reads of one chunk (a page
        at a time) then cost one check, not one each."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        size = self.layout.chunk_size
        data = _pread_exact(self._fd, size, index * size)
        self._check(index, data)
        self._cache[index] = data
        if len(self._cache) > _CACHED_CHUNKS:
            self._cache.popitem(last=False)
        return data

    def read_into(self, out: memoryview, offset: int) -> int:
        """Fill ``out`` with verified data from ``offset`` (up to the data's end).

        Whole chunks are read straight into ``out`` and checked there; the caller must
        not use ``out`` after an :class:`IntegrityError`."""
        end = min(offset + len(out), self.layout.data_size)
        size = self.layout.chunk_size
        done = 0
        while offset + done < end:
            pos = offset + done
            index, start = divmod(pos, size)
            n = min(size - start, end - pos)
            if start == 0 and n == size:
                target = out[done : done + size]
                if os.preadv(self._fd, [target], pos) != size:
                    raise IntegrityError("the environment image is truncated")
                self._check(index, target)
            else:
                out[done : done + n] = memoryview(self.read_chunk(index))[start : start + n]
            done += n
        return done

    def verify_all(self) -> None:
        """Read and check every chunk (``securetf env measure``)."""
        for i in range(self.layout.chunk_count):
            self.read_chunk(i)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise IntegrityError("the environment image is truncated")
    return data

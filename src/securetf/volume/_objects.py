"""The chunked object format: one object per version of one file.

Chunk ``i`` of an object is stored at offset ``i * (chunk_size + 16)`` as
``AES-256-GCM(file_key, nonce=i, aad=volume_id|object_id|i|last)``: ciphertext, then tag.
Every object version has a fresh key and each (key, index) pair is encrypted exactly
once, so a nonce never repeats and no stale chunk can be replayed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from securetf.crypto import TAG_SIZE, AesGcm, sha256
from securetf.errors import IntegrityError
from securetf.volume._keys import VolumeKey
from securetf.volume._padding import padded_size

_AAD_PREFIX = b"securetf/v1 chunk"
_ROOT_PREFIX = b"securetf/v1 root"
_INDEX = struct.Struct(">QB")

OBJECT_ID_SIZE = 16
SALT_SIZE = 32


@dataclass(frozen=True)
class FileEntry:
    """A file as the manifest records it."""

    path: str
    object_id: bytes
    salt: bytes
    size: int
    mode: int
    root: bytes


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-padded_size(size) // chunk_size))


def object_length(size: int, chunk_size: int) -> int:
    """The exact length of the object that stores a file of ``size`` bytes."""
    return padded_size(size) + chunk_count(size, chunk_size) * TAG_SIZE


def root_of(tags: list[bytes]) -> bytes:
    """The integrity root of an object: a digest over its chunk tags in order."""
    return sha256(_ROOT_PREFIX, *tags)


class ChunkCodec:
    """Encrypts and decrypts the chunks of one object version."""

    __slots__ = ("_aad", "_cipher", "chunk_size", "record_size")

    def __init__(
        self, key: VolumeKey, volume_id: bytes, object_id: bytes, salt: bytes, chunk_size: int
    ) -> None:
        self._cipher: AesGcm = key.file_cipher(volume_id, object_id, salt)
        self._aad = _AAD_PREFIX + volume_id + object_id
        self.chunk_size = chunk_size
        self.record_size = chunk_size + TAG_SIZE

    def _nonce_aad(self, index: int, last: bool) -> tuple[bytes, bytes]:
        return index.to_bytes(12, "big"), self._aad + _INDEX.pack(index, last)

    def seal(self, index: int, last: bool, plaintext: bytes | bytearray | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, last)
        return self._cipher.seal(nonce, plaintext, aad)

    def open_into(self, index: int, last: bool, record: memoryview, out: memoryview) -> None:
        nonce, aad = self._nonce_aad(index, last)
        self._cipher.open_into(nonce, record, aad, out)

    def read_chunk(
        self, fd: int, index: int, last: bool, length: int, buf: bytearray, out: memoryview
    ) -> bytes:
        """Read, authenticate and decrypt chunk ``index`` (``length`` plaintext bytes) into
        ``out``; return its tag. ``buf`` is scratch space of at least ``record_size`` bytes."""
        want = length + TAG_SIZE
        view = memoryview(buf)[:want]
        try:
            got = os.preadv(fd, [view], index * self.record_size)
        except OSError:
            raise IntegrityError() from None
        if got != want:
            raise IntegrityError()
        self.open_into(index, last, view, out[:length])
        return bytes(view[length:want])

    def seal_record(
        self, index: int, last: bool, plaintext: bytes | bytearray | memoryview, out: memoryview
    ) -> bytes:
        """Encrypt chunk ``index`` into ``out`` (its record: ciphertext, then tag); return
        the tag. ``out`` is exactly ``len(plaintext) + 16`` bytes."""
        nonce, aad = self._nonce_aad(index, last)
        self._cipher.seal_into(nonce, plaintext, aad, out)
        return bytes(out[-TAG_SIZE:])


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset``."""
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n

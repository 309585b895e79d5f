"""Volume keys: loading key files, and every key derived from a volume key."""

from __future__ import annotations

import binascii
from pathlib import Path

from securetf._fsutil import read_file, write_private_file
from securetf.crypto import KEY_SIZE, AesGcm, hkdf_sha256, random_bytes
from securetf.errors import UsageError

__all__ = ["VolumeKey", "generate_key_file"]

_KEY_CHECK_INFO = b"securetf/v1 key-check"
_MANIFEST_INFO = b"securetf/v1 manifest"
_FILE_INFO = b"securetf/v1 file"


class VolumeKey:
    """A 256-bit volume key. Every key it derives is bound to the volume's id."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_SIZE:
            raise UsageError(f"a volume key is {KEY_SIZE} bytes, got {len(raw)}")
        self._raw = raw

    @classmethod
    def generate(cls) -> VolumeKey:
        return cls(random_bytes(KEY_SIZE))

    @classmethod
    def from_file(cls, path: Path) -> VolumeKey:
        """Load a key file: 32 raw bytes, or 64 hexadecimal characters."""
        data = read_file(Path(path), "key file")
        if len(data) == KEY_SIZE:
            return cls(data)
        text = data.strip()
        if len(text) == 2 * KEY_SIZE:
            try:
                return cls(binascii.unhexlify(text))
            except binascii.Error:
                pass
        raise UsageError(
            f"{path} is not a volume key (expected 32 bytes or 64 hex characters); "
            "create one with 'securetf volume keygen KEYFILE'"
        )

    def raw(self) -> bytes:
        return self._raw

    def key_check(self, volume_id: bytes) -> bytes:
        """A public value that tells a wrong key from a damaged manifest."""
        return hkdf_sha256(self._raw, salt=volume_id, info=_KEY_CHECK_INFO)

    def manifest_cipher(self, volume_id: bytes, salt: bytes) -> AesGcm:
        return AesGcm(hkdf_sha256(self._raw, salt=salt, info=_MANIFEST_INFO + volume_id))

    def file_cipher(self, volume_id: bytes, object_id: bytes, salt: bytes) -> AesGcm:
        info = _FILE_INFO + volume_id + object_id
        return AesGcm(hkdf_sha256(self._raw, salt=salt, info=info))


def generate_key_file(path: Path) -> None:
    """Write a new random volume key to ``path`` (mode 0600); refuse an existing file."""
    write_private_file(Path(path), VolumeKey.generate().raw())

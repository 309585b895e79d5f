"""AES-256-GCM with caller-chosen nonces. Hazardous material.

A nonce must never repeat under one key: callers derive a fresh key for every sealed
object (see docs/volume-format.md) and count nonces within it. Every authentication
failure becomes the same bare :class:`securetf.errors.IntegrityError`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securetf.errors import IntegrityError, UsageError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


class AesGcm:
    """One AES-256-GCM key. ``seal`` returns ciphertext followed by the 16-byte tag."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise UsageError(f"an AES-256-GCM key is {KEY_SIZE} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes | bytearray | memoryview, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def seal_into(
        self, nonce: bytes, plaintext: bytes | bytearray | memoryview, aad: bytes, out: memoryview
    ) -> int:
        """Write ciphertext||tag into ``out`` (len(plaintext) + 16 bytes); return that length."""
        return self._aead.encrypt_into(nonce, plaintext, aad, out)

    def open(self, nonce: bytes, sealed: bytes | memoryview, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except (InvalidTag, ValueError, OverflowError):
            raise IntegrityError() from None

    def open_into(
        self, nonce: bytes, sealed: bytes | memoryview, aad: bytes, out: memoryview
    ) -> int:
        """Authenticate and decrypt into ``out``; nothing is trusted unless this returns."""
        try:
            return self._aead.decrypt_into(nonce, sealed, aad, out)
        except (InvalidTag, ValueError, OverflowError):
            raise IntegrityError() from None

"""Sealing bytes to a recipient's X25519 public key (ephemeral ECDH, HKDF, AES-256-GCM).

``blob = ephemeral_public(32) || AES-GCM(key, nonce=0, aad=info, plaintext)`` with
``key = HKDF(ikm=X25519(eph, recipient), salt=eph_pub || recipient_pub, info=info)``.
The key is fresh for every blob, so the zero nonce is never reused under a key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from securetf.crypto._hash import hkdf_sha256
from securetf.crypto._pem import load_private_pem
from securetf.crypto.hazmat_aead import AesGcm
from securetf.errors import IntegrityError, UsageError

__all__ = ["BoxKey", "seal_to"]

_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_ZERO = bytes(12)


def _public_raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def _key(shared: bytes, eph: bytes, recipient: bytes, info: bytes) -> AesGcm:
    return AesGcm(hkdf_sha256(shared, salt=eph + recipient, info=info))


def seal_to(recipient_public: bytes, plaintext: bytes, *, info: bytes) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of the X25519 private key can read it."""
    if len(recipient_public) != 32:
        raise UsageError("an X25519 public key is 32 bytes")
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    eph = X25519PrivateKey.generate()
    eph_pub = _public_raw(eph.public_key())
    shared = eph.exchange(recipient)
    return eph_pub + _key(shared, eph_pub, recipient_public, info).seal(_ZERO, plaintext, info)


class BoxKey:
    """An X25519 private key that opens sealed boxes; in memory unless written with
    :meth:`to_pem` (an owner's recovery key, kept on the owner's machine)."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey | None = None) -> None:
        self._key = X25519PrivateKey.generate() if key is None else key

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "key") -> BoxKey:
        key = load_private_pem(data, source=source)
        if not isinstance(key, X25519PrivateKey):
            raise UsageError(f"{source} does not hold an X25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: callers store it with mode 0600."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public(self) -> bytes:
        return _public_raw(self._key.public_key())

    def open(self, blob: bytes, *, info: bytes) -> bytes:
        if len(blob) < 32 + 16:
            raise IntegrityError()
        eph_pub = blob[:32]
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        except ValueError:
            raise IntegrityError() from None
        return _key(shared, eph_pub, self.public(), info).open(_ZERO, blob[32:], info)

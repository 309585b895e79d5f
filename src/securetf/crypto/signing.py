"""Ed25519 signing keys, and their text form ``ed25519:<base64 of the SPKI DER>``.

The text form is what a policy's ``public_key`` field holds.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from securetf.crypto._pem import load_private_pem
from securetf.errors import AuthenticationError, UsageError

_PREFIX = "ed25519:"
RAW_KEY_SIZE = 32  # RFC 8032: public keys and private seeds alike


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_text(cls, text: str) -> VerifyKey:
        if not text.startswith(_PREFIX):
            raise UsageError(f"a public key looks like 'ed25519:MCowBQ...', got {text!r}")
        try:
            der = base64.b64decode(text[len(_PREFIX) :], validate=True)
            key = serialization.load_der_public_key(der)
        except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"not a valid Ed25519 public key: {text!r}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"not an Ed25519 public key: {text!r}")
        return cls(key)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        """The key from its 32-byte RFC 8032 encoding (as signed notes carry it)."""
        if len(raw) != RAW_KEY_SIZE:
            raise UsageError(f"an Ed25519 public key is {RAW_KEY_SIZE} bytes, got {len(raw)}")
        try:
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise UsageError("not a valid Ed25519 public key") from exc

    def to_text(self) -> str:
        der = self._key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _PREFIX + base64.b64encode(der).decode("ascii")

    def raw(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return if ``signature`` is valid for ``message``; raise otherwise."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise AuthenticationError("signature verification failed") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.raw() == other.raw()

    def __hash__(self) -> int:
        return hash(self.raw())


class SigningKey:
    """An Ed25519 private key."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key from its 32-byte RFC 8032 seed (the form Go's signed-note keys carry)."""
        if len(seed) != RAW_KEY_SIZE:
            raise UsageError(f"an Ed25519 seed is {RAW_KEY_SIZE} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "key") -> SigningKey:
        key = load_private_pem(data, source=source)
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(f"{source} does not hold an Ed25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: callers store it with mode 0600."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key())

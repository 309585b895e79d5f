"""Encryption at rest of secrets and CA keys, bound to the row that holds them.

Format of a sealed value (format 1)::

    0x01 || salt (32 random bytes) || AES-256-GCM(key, nonce = 12 zero bytes, value, aad)
    key = HKDF-SHA-256(master key, salt, info = "securetf-cas-record-v1")
    aad = "securetf-cas-record-v1\\0" || canonical_json([kind, policy, name])

Every record gets its own key from its fresh salt, so the fixed nonce is never used twice
under one key. The AAD binds the ciphertext to its kind (secret, CA key, pending secret),
its policy and its name: a ciphertext copied into another row fails to open with
:class:`IntegrityError`, as does any edited byte or another master key.
"""

from __future__ import annotations

from securetf.cas.master_key import MasterKey
from securetf.crypto import NONCE_SIZE, AesGcm, random_bytes
from securetf.errors import IntegrityError
from securetf.policy import canonical_json

__all__ = ["KIND_CA_KEY", "KIND_PENDING_SECRET", "KIND_SECRET", "RecordSealer"]

# Record kinds bound into the AAD (names, not passwords).
KIND_SECRET = "secret"  # noqa: S105
KIND_CA_KEY = "ca-key"
KIND_PENDING_SECRET = "pending-secret"  # noqa: S105

_FORMAT = b"\x01"
_SALT_SIZE = 32
_INFO = b"securetf-cas-record-v1"
_NONCE = bytes(NONCE_SIZE)


def _aad(kind: str, policy: str, name: str) -> bytes:
    return _INFO + b"\x00" + canonical_json([kind, policy, name])


class RecordSealer:
    """Seals and opens the values of one CAS database under its master key."""

    __slots__ = ("_master",)

    def __init__(self, master_key: MasterKey) -> None:
        self._master = master_key

    def seal(self, kind: str, policy: str, name: str, value: bytes) -> bytes:
        salt = random_bytes(_SALT_SIZE)
        aead = AesGcm(self._master.derive(salt=salt, info=_INFO))
        return _FORMAT + salt + aead.seal(_NONCE, value, _aad(kind, policy, name))

    def open(self, kind: str, policy: str, name: str, sealed: bytes) -> bytes:
        """The value; :class:`IntegrityError` (opaque) if it was not sealed for this row."""
        if len(sealed) < 1 + _SALT_SIZE or sealed[:1] != _FORMAT:
            raise IntegrityError()
        salt = sealed[1 : 1 + _SALT_SIZE]
        aead = AesGcm(self._master.derive(salt=salt, info=_INFO))
        return aead.open(_NONCE, sealed[1 + _SALT_SIZE :], _aad(kind, policy, name))

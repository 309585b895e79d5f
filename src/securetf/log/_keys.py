"""Signed-note keys: names, key IDs, and the vkey text form ``name+hash+base64(type||key)``.

Two signature types, both Ed25519 (C2SP signed-note, tlog-cosignature):

- 0x01, a note signature over the note text: how the log signs its checkpoints;
- 0x04, a cosignature/v1: a witness's timestamped signature over
  ``cosignature/v1\\ntime <t>\\n`` followed by the note text.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable
from typing import Protocol, cast

from securetf.crypto import SigningKey, VerifyKey, sha256
from securetf.errors import AuthenticationError, UsageError
from securetf.log._errors import NoteError

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "NoteVerifier",
    "b64decode_canonical",
    "check_key_name",
    "key_id",
    "parse_vkey",
]

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
_MAX_TIMESTAMP = (1 << 63) - 1  # tlog-cosignature: "MUST NOT exceed 2^63 - 1"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}\Z")


def check_key_name(name: str) -> None:
    """Raise :class:`UsageError` unless ``name`` is a valid key name (signed-note: non-empty,
    no Unicode space, no '+')."""
    if not is_key_name(name):
        raise UsageError(f"not a valid signed-note key name (empty, a space or a '+'): {name!r}")


def is_key_name(name: str) -> bool:
    # str.isspace() is true for Go's unicode.IsSpace set (and for separators below U+0020,
    # which a note cannot hold anyway).
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4], big-endian."""
    digest = sha256(name.encode(), b"\n", bytes([sig_type]), public_key)
    return int.from_bytes(digest[:4], "big")


def b64decode_canonical(text: str | bytes) -> bytes:
    """Standard padded base64 (RFC 4648 section 4), refusing any other spelling of the
    same bytes, so one value has exactly one text form."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not standard base64") from None
    if base64.b64encode(value) != raw:
        raise ValueError("not canonical base64")
    return value


class NoteVerifier(Protocol):
    """One named key that checks the signature lines carrying its name and key ID."""

    name: str
    key_id: int

    def verify(self, text: bytes, signature: bytes) -> None:
        """Return if ``signature`` (the bytes after the key ID) is valid for the note
        ``text``; raise :class:`NoteError` otherwise."""
        ...


class Ed25519Verifier:
    """Checks note signatures (type 0x01) by one named key."""

    sig_type = ED25519

    def __init__(self, name: str, key: VerifyKey) -> None:
        check_key_name(name)
        self.name = name
        self.key = key
        self.key_id = key_id(name, self.sig_type, key.raw())

    def verify(self, text: bytes, signature: bytes) -> None:
        """Return if ``signature`` (the bytes after the key ID) signs ``text``."""
        _verify(self, signature, text)

    def vkey(self) -> str:
        raw = bytes([self.sig_type]) + self.key.raw()
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(raw).decode()}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}+{self.key_id:08x})"


class CosignatureVerifier(Ed25519Verifier):
    """Checks cosignature/v1 signatures (type 0x04) by one named witness key."""

    sig_type = COSIGNATURE_V1

    def verify(self, text: bytes, signature: bytes) -> None:
        timestamp = self.timestamp(signature)
        _verify(self, signature[8:], cosigned_message(timestamp, text))

    @staticmethod
    def timestamp(signature: bytes) -> int:
        """The POSIX time a cosignature claims (its first 8 bytes, big-endian)."""
        if len(signature) != 8 + 64:
            raise NoteError(f"a cosignature is 72 bytes, not {len(signature)}")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            raise NoteError("a cosignature's timestamp exceeds 2^63 - 1")
        return int(timestamp)


def cosigned_message(timestamp: int, text: bytes) -> bytes:
    """What a cosignature/v1 signs: two header lines, then the whole note text."""
    return b"cosignature/v1\ntime %d\n" % timestamp + text


class Ed25519Signer:
    """Signs notes (type 0x01) as one named key: the log's checkpoints."""

    verifier_type: type[Ed25519Verifier] = Ed25519Verifier

    def __init__(self, name: str, key: SigningKey) -> None:
        self._key = key
        self._verifier = self.verifier_type(name, key.verify_key())

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    def verifier(self) -> Ed25519Verifier:
        return self._verifier

    def sign(self, text: bytes) -> bytes:
        """The signature bytes that follow the key ID in a signature line."""
        return self._key.sign(text)

    @staticmethod
    def from_skey(skey: str) -> Ed25519Signer:
        """A key in Go's text form ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise UsageError("a signer key looks like PRIVATE+KEY+<name>+<hash>+<key>")
        name, declared, raw = _split_key(parts[2], parts[3], parts[4])
        if len(raw) != 33 or raw[0] != ED25519:
            raise UsageError("the signer key is not an Ed25519 (type 0x01) seed")
        signer = Ed25519Signer(name, SigningKey.from_seed(raw[1:]))
        if declared != key_id(name, ED25519, signer.verifier().key.raw()):
            raise UsageError("the signer key's hash does not match its key")
        return signer


class CosignatureSigner(Ed25519Signer):
    """Cosigns (cosignature/v1, type 0x04) as one named witness key, at the clock's time."""

    verifier_type = CosignatureVerifier

    def __init__(self, name: str, key: SigningKey, *, clock: Callable[[], float]) -> None:
        super().__init__(name, key)
        self._clock = clock

    @staticmethod
    def skey(name: str, seed: bytes) -> str:
        """A witness key in the text form ``PRIVATE+KEY+name+hash+base64(0x04 || seed)``."""
        check_key_name(name)
        public = SigningKey.from_seed(seed).verify_key().raw()
        blob = base64.b64encode(bytes([COSIGNATURE_V1]) + seed).decode()
        return f"PRIVATE+KEY+{name}+{key_id(name, COSIGNATURE_V1, public):08x}+{blob}"

    @staticmethod
    def load(skey: str, *, clock: Callable[[], float]) -> CosignatureSigner:
        """The witness key :meth:`skey` wrote."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise UsageError("a witness key looks like PRIVATE+KEY+<name>+<hash>+<key>")
        name, declared, raw = _split_key(parts[2], parts[3], parts[4])
        if len(raw) != 33 or raw[0] != COSIGNATURE_V1:
            raise UsageError("the witness key is not a cosignature/v1 (type 0x04) seed")
        signer = CosignatureSigner(name, SigningKey.from_seed(raw[1:]), clock=clock)
        if declared != signer.key_id:
            raise UsageError("the witness key's hash does not match its key")
        return signer

    def verifier(self) -> CosignatureVerifier:
        return cast(CosignatureVerifier, self._verifier)  # built from verifier_type

    def sign(self, text: bytes) -> bytes:
        timestamp = int(self._clock())
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise UsageError(f"the clock says {timestamp}, not a POSIX time")
        return struct.pack(">Q", timestamp) + self._key.sign(cosigned_message(timestamp, text))


def parse_vkey(vkey: str) -> Ed25519Verifier:
    """The verifier for a vkey ``name+hash+base64(type || key)``: type 0x01 (a log key)
    or 0x04 (a witness key); anything else is a :class:`UsageError`."""
    name, rest = vkey.split("+", 1) if "+" in vkey else (vkey, "")
    declared_hex, key64 = rest.split("+", 1) if "+" in rest else (rest, "")
    name, declared, raw = _split_key(name, declared_hex, key64)
    kinds: dict[int, type[Ed25519Verifier]] = {
        ED25519: Ed25519Verifier,
        COSIGNATURE_V1: CosignatureVerifier,
    }
    if not raw or raw[0] not in kinds:
        kind = f"0x{raw[0]:02x}" if raw else "none"
        raise UsageError(f"vkey {vkey!r}: unsupported key type {kind} (0x01 or 0x04 only)")
    if len(raw) != 33:
        raise UsageError(f"vkey {vkey!r}: an Ed25519 key is 32 bytes, not {len(raw) - 1}")
    verifier = kinds[raw[0]](name, VerifyKey.from_raw(raw[1:]))
    if verifier.key_id != declared:
        raise UsageError(f"vkey {vkey!r}: the hash does not match the name and key")
    return verifier


def _split_key(name: str, declared_hex: str, key64: str) -> tuple[str, int, bytes]:
    if not is_key_name(name) or not _HEX8.match(declared_hex):
        raise UsageError("a key looks like <name>+<8 hex digits>+<base64 key>")
    try:
        raw = b64decode_canonical(key64)
    except ValueError:
        raise UsageError("the key part of a note key is not standard base64") from None
    return name, int(declared_hex, 16), raw


def _verify(verifier: Ed25519Verifier, signature: bytes, message: bytes) -> None:
    try:
        verifier.key.verify(signature, message)
    except AuthenticationError:
        raise NoteError(
            f"the signature by {verifier.name}+{verifier.key_id:08x} does not verify"
        ) from None

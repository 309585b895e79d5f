"""C2SP signed notes: a text, a blank line, and signature lines ``— <name> <base64>``.

:func:`open_note` is the only way untrusted note bytes become a text: it applies every
rule of the spec and the named limits, checks each signature by a known key, and ignores
the others (the note's text must be ignored unless a trusted key signed it).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from securetf.errors import UsageError
from securetf.log._errors import NoteError
from securetf.log._keys import NoteVerifier, b64decode_canonical, check_key_name, is_key_name
from securetf.log._limits import MAX_NOTE_SIZE, MAX_SIGNATURES

__all__ = [
    "NoteSignature",
    "NoteSigner",
    "OpenedNote",
    "Verifiers",
    "open_note",
    "sign_note",
    "signature_line",
]

_DASH = "\u2014 ".encode()  # em dash, space
# A control character other than newline (one regular expression pass: a note is parsed
# or built on every answer that carries a checkpoint).
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


class NoteSigner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes:
        """The signature bytes that follow the key ID in a signature line."""
        ...


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # what follows the key ID


@dataclass(frozen=True)
class OpenedNote:
    """A note whose ``verified`` signatures (one per key, in note order) checked out."""

    text: bytes
    verified: tuple[tuple[NoteVerifier, NoteSignature], ...]
    unverified: tuple[NoteSignature, ...]

    def signed_by(self, verifier: NoteVerifier) -> NoteSignature | None:
        for known, sig in self.verified:
            if known is verifier:
                return sig
        return None


class Verifiers:
    """The keys a reader trusts, found by (name, key ID); two keys with both equal are a
    configuration error, not something to guess between."""

    def __init__(self, verifiers: Iterable[NoteVerifier]) -> None:
        self._by_id: dict[tuple[str, int], NoteVerifier] = {}
        for v in verifiers:
            key = (v.name, v.key_id)
            if key in self._by_id:
                raise UsageError(f"two trusted keys are both {v.name}+{v.key_id:08x}")
            self._by_id[key] = v

    def find(self, name: str, key_id: int) -> NoteVerifier | None:
        return self._by_id.get((name, key_id))


def open_note(data: bytes, verifiers: Verifiers) -> OpenedNote:
    """Parse ``data`` and check the signatures of known keys; raise :class:`NoteError` if
    it is malformed, a known key's signature fails, or no known key signed it."""
    text, lines = _split(data)
    verified: dict[tuple[str, int], tuple[NoteVerifier, NoteSignature]] = {}
    unverified: dict[bytes, NoteSignature] = {}
    for line in lines:
        sig = _parse_line(line)
        known = verifiers.find(sig.name, sig.key_id)
        if known is None:
            # Unknown keys are ignored, even when they share a name or an ID (not both)
            # with a known one; an identical repeated line is kept once.
            unverified.setdefault(line, sig)
            continue
        # Every line of a known key is checked, repeats too: one that fails rejects the
        # whole note (signed-note: "clients SHOULD reject the whole note").
        known.verify(text, sig.signature)
        verified.setdefault((sig.name, sig.key_id), (known, sig))
    if not verified:
        raise NoteError("the note is not signed by any trusted key")
    return OpenedNote(text, tuple(verified.values()), tuple(unverified.values()))


def signature_line(signer: NoteSigner, text: bytes) -> bytes:
    """``— <name> base64(key ID || signature)\\n`` for ``text``."""
    blob = signer.key_id.to_bytes(4, "big") + signer.sign(text)
    return _DASH + signer.name.encode() + b" " + _b64(blob) + b"\n"


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note: ``text``, a blank line, one signature line per signer."""
    if not signers:
        raise UsageError("a signed note needs at least one signer")
    for signer in signers:
        check_key_name(signer.name)
    note = text + b"\n" + b"".join(signature_line(s, text) for s in signers)
    try:
        parsed, _ = _split(note)
    except NoteError as exc:
        raise UsageError(f"cannot sign this text as a note: {exc}") from None
    if parsed != text:
        raise UsageError("a note text must end in a newline")
    return note


def _split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The text and the signature lines; the checks of the signed-note format."""
    if len(data) > MAX_NOTE_SIZE:
        raise NoteError(f"the note is {len(data)} bytes; at most {MAX_NOTE_SIZE} are read")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the note is not valid UTF-8") from None
    if _CONTROL.search(decoded):
        raise NoteError("the note holds a control character other than newline")
    split = data.rfind(b"\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise NoteError("the note's signature lines are missing or do not end in a newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(lines)} signatures; at most {MAX_SIGNATURES}")
    return text, lines


def _parse_line(line: bytes) -> NoteSignature:
    if not line.startswith(_DASH):
        raise NoteError("a signature line does not start with an em dash and a space")
    name, _, encoded = line[len(_DASH) :].decode().partition(" ")
    if not is_key_name(name):
        raise NoteError(f"a signature line has an invalid key name {name!r}")
    try:
        blob = b64decode_canonical(encoded)
    except ValueError:
        raise NoteError(f"the signature by {name} is not standard base64") from None
    if len(blob) < 5:
        raise NoteError(f"the signature by {name} is too short")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def _b64(value: bytes) -> bytes:
    return base64.b64encode(value)

"""C2SP tlog-checkpoint: the note text that carries a log's tree head.

<origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from securetf.errors import UsageError
from securetf.log._errors import NoteError
from securetf.log._hashing import EMPTY_ROOT
from securetf.log._keys import b64decode_canonical
from securetf.log._limits import HASH_SIZE, MAX_TREE_SIZE
from securetf.log._note import NoteSigner, sign_note, signature_line

__all__ = ["Checkpoint", "CheckpointSigner"]

_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
_MAX_DIGITS = len(str(MAX_TREE_SIZE))


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, line in (("origin", self.origin), *(("extension", e) for e in self.extensions)):
            if not line or any(c < " " for c in line):
                raise UsageError(f"a checkpoint {what} line must be non-empty, on one line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise UsageError(f"a tree size lies in 0..{MAX_TREE_SIZE}, not {self.size}")
        if len(self.root) != HASH_SIZE:
            raise UsageError(f"a root hash is {HASH_SIZE} bytes, not {len(self.root)}")

    def text(self) -> bytes:
        """The note text (the bytes a log signs and a witness cosigns)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions)).encode()

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """The checkpoint in a note text (from :func:`open_note`); :class:`NoteError` if
        it is not one."""
        if not text.endswith(b"\n"):
            raise NoteError("a checkpoint ends in a newline")
        try:
            lines = text[:-1].decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise NoteError("a checkpoint is UTF-8 text") from None
        if len(lines) < 3 or not all(lines):
            raise NoteError("a checkpoint is at least three lines, none of them empty")
        origin, size, root, *extensions = lines
        if len(size) > _MAX_DIGITS or not _DECIMAL.match(size) or int(size) > MAX_TREE_SIZE:
            raise NoteError(f"the checkpoint's tree size {size[:30]!r} is not a decimal size")
        try:
            root_hash = b64decode_canonical(root)
        except ValueError:
            raise NoteError("the checkpoint's root hash is not standard base64") from None
        if len(root_hash) != HASH_SIZE:
            raise NoteError(f"the checkpoint's root hash is {len(root_hash)} bytes, not 32")
        try:
            return cls(origin, int(size), root_hash, tuple(extensions))
        except UsageError as exc:
            raise NoteError(f"not a checkpoint: {exc}") from None


class CheckpointSigner:
    """Signs the checkpoints of one log, whose origin is ``signer``'s key name: exactly the
    note ``sign_note(Checkpoint(origin, size, root).text(), [signer])``, with the checks of
    the origin and the key name made once here rather than per note (a CAS signs one for
    nearly every answer)."""

    def __init__(self, signer: NoteSigner) -> None:
        sign_note(Checkpoint(signer.name, 0, EMPTY_ROOT).text(), [signer])  # checks it all
        self._signer = signer
        self._origin = signer.name.encode() + b"\n"

    def sign(self, size: int, root: bytes) -> bytes:
        if not 0 <= size <= MAX_TREE_SIZE or len(root) != HASH_SIZE:
            raise UsageError(
                f"no checkpoint of a tree of {size} entries with a {len(root)}-byte root"
            )
        text = b"%s%d\n%s\n" % (self._origin, size, base64.b64encode(root))
        return text + b"\n" + signature_line(self._signer, text)

"""C2SP tlog-checkpoint: the note text that carries a log's tree head.

<origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from securetf.errors import UsageError
from securetf.log._errors import NoteError
from securetf.log._keys import b64decode_canonical
from securetf.log._limits import HASH_SIZE, MAX_TREE_SIZE

__all__ = ["Checkpoint"]

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

"""Which writes the kernel refused the program: read from strace's lines, pure.

``securetf run --trace-writes`` runs the program under strace (:mod:`._trace`), which
prints each failed call of :data:`WRITE_CALLS`. Those lines carry the program's paths:
untrusted text, parsed here with bounded effort, kept up to :data:`MAX_REFUSALS` distinct
entries and shown escaped. A path inside one of the program's private places (its volumes,
its memory, its secret files, code from a sealed volume) is shown only as that place: the
operator who reads the report learns where writes failed, never the names the program
keeps there.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

#: The calls that create, change or remove names or metadata, with the positions of their
#: directory descriptor (None: relative to the working directory) and of the path written
#: (for renames and links, the new name).
WRITE_CALLS: dict[str, tuple[int | None, int]] = {
    "open": (None, 0),
    "openat": (0, 1),
    "openat2": (0, 1),
    "creat": (None, 0),
    "mkdir": (None, 0),
    "mkdirat": (0, 1),
    "mknod": (None, 0),
    "mknodat": (0, 1),
    "rmdir": (None, 0),
    "unlink": (None, 0),
    "unlinkat": (0, 1),
    "rename": (None, 1),
    "renameat": (2, 3),
    "renameat2": (2, 3),
    "link": (None, 1),
    "linkat": (2, 3),
    "symlink": (None, 1),
    "symlinkat": (1, 2),
    "truncate": (None, 0),
    "chmod": (None, 0),
    "fchmodat": (0, 1),
    "fchmodat2": (0, 1),
    "chown": (None, 0),
    "lchown": (None, 0),
    "fchownat": (0, 1),
    "utime": (None, 0),
    "utimes": (None, 0),
    "utimensat": (0, 1),
    "futimesat": (0, 1),
    "setxattr": (None, 0),
    "lsetxattr": (None, 0),
    "removexattr": (None, 0),
    "lremovexattr": (None, 0),
}
#: Where an open call's flags are; an open writes only with one of :data:`WRITE_FLAGS`.
OPEN_FLAGS = {"open": 1, "openat": 2, "openat2": 2}
WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"})
#: The errors that refuse a write. EEXIST, EXDEV, ENOTEMPTY and the like are a program's
#: ordinary business (``makedirs(exist_ok=True)``, a rename's copy fallback).
REFUSALS = frozenset({"EROFS", "EACCES", "EPERM", "ENOENT", "ENOSPC", "EDQUOT"})
#: Removing what is not there is no refused write.
REMOVALS = frozenset({"rmdir", "unlink", "unlinkat"})

#: Distinct refusals kept for the report; later ones are only counted.
MAX_REFUSALS = 20
#: Characters of one path shown.
MAX_PATH_CHARS = 300
#: A longer line (no path is that long, even escaped) is not read.
MAX_LINE_BYTES = 64 * 1024
#: What a path relative to an unknown directory is shown as: it could lie anywhere.
RELATIVE = "(a path relative to an unknown directory)"

_LINE = re.compile(
    r"(?:\[pid +\d+\] +|\d+ +)?(?P<call>[a-z0-9_]+)\((?P<args>.*)\) += -1 "
    r"(?P<error>E[A-Z0-9]+) \([^()]*\)"
)
_ESCAPE = re.compile(r"\\([0-7]{1,3}|x[0-9a-fA-F]{2}|.)|[^\\]+|\\", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b"}


@dataclass(frozen=True)
class Refusal:
    path: str
    """Absolute and normalized, or relative when strace could not name its directory."""
    error: str
    """The errno's name (``EROFS``)."""


def parse(line: bytes) -> Refusal | None:
    """The refused write one strace line reports, or None (another call, another error,
    an open for reading, a line not strace's)."""
    if len(line) > MAX_LINE_BYTES:
        return None
    match = _LINE.fullmatch(line.decode("latin-1").rstrip("\n"))
    if match is None:
        return None
    call, error = match["call"], match["error"]
    where = WRITE_CALLS.get(call)
    if where is None or error not in REFUSALS or (error == "ENOENT" and call in REMOVALS):
        return None
    args = list(_arguments(match["args"]))
    dirfd, at = where
    if at >= len(args) or (call in OPEN_FLAGS and not _writes(args, OPEN_FLAGS[call])):
        return None
    path = _string(args[at])
    if path is None:
        return None
    directory = _fd_path(args[dirfd]) if dirfd is not None and dirfd < len(args) else None
    return Refusal(_resolve(path, directory), error)


def _writes(args: list[str], at: int) -> bool:
    if at >= len(args):
        return False
    flags = args[at]
    if flags.startswith("{"):  # openat2's struct open_how
        found = re.search(r"flags=([^,}]*)", flags)
        flags = found[1] if found else ""
    return not WRITE_FLAGS.isdisjoint(flags.split("|"))


def _arguments(text: str) -> Iterator[str]:
    """``text`` split at the commas between arguments: not inside a string, a descriptor's
    ``<path>``, a structure or an array."""
    depth, quoted, escaped, start = 0, False, False, 0
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "{[<":
            depth += 1
        elif ch in "}]>":
            depth -= 1
        elif ch == "," and depth == 0:
            yield text[start:i].strip()
            start = i + 1
    yield text[start:].strip()


def _string(arg: str) -> str | None:
    """A quoted string argument as text (strace cut a longer one: ``"..."...``)."""
    if arg.endswith('"...'):
        arg = arg[:-3]
    if len(arg) < 2 or not (arg.startswith('"') and arg.endswith('"')):
        return None  # NULL, or an address strace could not read
    return _unescape(arg[1:-1])


def _fd_path(arg: str) -> str | None:
    """The directory strace named for a descriptor (``AT_FDCWD</app>``, ``3</data>``)."""
    start = arg.find("<")
    if start < 0 or not arg.endswith(">"):
        return None
    return _unescape(arg[start + 1 : -1])


def _unescape(text: str) -> str:
    """strace's C escapes (``\\"``, ``\\n``, ``\\303``, ``\\x41``) back to the bytes the
    program gave, decoded as UTF-8 where they are."""
    out = bytearray()
    for piece in _ESCAPE.finditer(text):
        escape = piece[1]
        if escape is None:
            out += piece[0].encode("latin-1", errors="replace")
        elif escape[0] in "01234567":
            out.append(int(escape, 8) & 0xFF)
        elif escape[0] == "x" and len(escape) == 3:
            out.append(int(escape[1:], 16))
        else:
            out += _SIMPLE_ESCAPES.get(escape, escape).encode("latin-1", errors="replace")
    return out.decode("utf-8", errors="backslashreplace")


def _resolve(path: str, directory: str | None) -> str:
    if not path.startswith("/"):
        if directory is None or not directory.startswith("/"):
            return path
        path = posixpath.join(directory, path)
    # Lexically: "/tmp/../data/x" is inside /data, whatever the program meant by it.
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def _shown(text: str) -> str:
    """Printable, on one line, at most :data:`MAX_PATH_CHARS` characters."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        if size + len(piece) > MAX_PATH_CHARS:
            return "".join(out) + "..."
        out.append(piece)
        size += len(piece)
    return "".join(out)


@dataclass
class RefusedWrites:
    """The refusals of one run, in the order they first happened, for the operator.

    ``private``: the view's paths whose contents are the program's (volumes, memory, secret
    files, sealed code); a refusal inside one is shown as that place.
    """

    private: Collection[str]
    found: dict[tuple[str, str], None] = field(default_factory=dict)
    more: int = 0
    """Refusals after :data:`MAX_REFUSALS` distinct ones: counted, not kept."""

    def add(self, line: bytes) -> None:
        refusal = parse(line)
        if refusal is None:
            return
        key = (self._place(refusal.path), refusal.error)
        if key in self.found:
            return
        if len(self.found) >= MAX_REFUSALS:
            self.more += 1
            return
        self.found[key] = None

    def _place(self, path: str) -> str:
        if not path.startswith("/"):
            return RELATIVE
        for place in sorted(self.private, key=len, reverse=True):
            top = place.rstrip("/") or "/"
            if path == top:
                return _shown(top)
            if path.startswith(top + "/"):
                return _shown(top) + "/..."
        return _shown(path)

    def summary(self) -> str:
        """``writes refused: /etc/x (EROFS), /data/... (EROFS)``, or that none were."""
        if not self.found:
            return "no write was refused"
        listed = ", ".join(f"{path} ({error})" for path, error in self.found)
        more = f", and {self.more} more" if self.more else ""
        return f"writes refused: {listed}{more}"

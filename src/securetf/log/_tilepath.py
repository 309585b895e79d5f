"""tlog-tiles names and encodings: tile paths, which tiles a tree has, entry bundles.

    tile/<L>/<N>[.p/<W>]        hashes at tile level L (L = 0: leaf hashes)
    tile/entries/<N>[.p/<W>]    the entries of level-0 tile N

<N> is written in zero-padded groups of three digits, all but the last prefixed by
``x`` (1234067 -> x001/x234/067), so a plain file system holds the tree without a name
that is both a file and a directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Literal

from securetf.errors import UsageError
from securetf.log._errors import ProofError
from securetf.log._limits import MAX_ENTRY_SIZE, MAX_TREE_SIZE, TILE_HEIGHT, TILE_WIDTH

__all__ = [
    "ENTRIES",
    "Level",
    "decode_bundle",
    "encode_bundle",
    "parse_tile_path",
    "tile_path",
    "tiles_for_size",
]

ENTRIES: Literal["entries"] = "entries"
Level = int | Literal["entries"]

_MAX_LEVEL = 63
_MAX_INDEX = MAX_TREE_SIZE // TILE_WIDTH
_GROUP = re.compile(r"[0-9]{3}\Z")
_NUMBER = re.compile(r"(0|[1-9][0-9]{0,2})\Z")


def tile_path(level: Level, index: int, width: int = TILE_WIDTH) -> str:
    """The path of tile ``index`` at ``level`` (or of an entry bundle), ``width`` wide."""
    if level != ENTRIES and not (isinstance(level, int) and 0 <= level <= _MAX_LEVEL):
        raise UsageError(f"a tile level lies in 0..{_MAX_LEVEL} or is 'entries', not {level!r}")
    if not 0 <= index <= _MAX_INDEX or not 1 <= width <= TILE_WIDTH:
        raise UsageError(f"no tile {index} of width {width}")
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.append(group)
        if index == 0:
            break
    groups.reverse()
    digits = "/".join(f"x{g:03d}" for g in groups[:-1]) + ("/" if len(groups) > 1 else "")
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{digits}{groups[-1]:03d}{suffix}"


def parse_tile_path(path: str) -> tuple[Level, int, int]:
    """(level, index, width) of a canonical tile path; :class:`UsageError` otherwise."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise UsageError(f"not a tile path: {path!r}")
    width = TILE_WIDTH
    if parts[-2].endswith(".p"):
        w = parts.pop()
        if not _NUMBER.match(w) or not 1 <= int(w) < TILE_WIDTH:
            raise UsageError(f"not a partial tile width in {path!r}")
        width = int(w)
        parts[-1] = parts[-1][:-2]
    level_text, *groups = parts[1:]
    level: Level
    if level_text == ENTRIES:
        level = ENTRIES
    elif _NUMBER.match(level_text) and int(level_text) <= _MAX_LEVEL:
        level = int(level_text)
    else:
        raise UsageError(f"not a tile level in {path!r}")
    index = 0
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        digits = group if last else group.removeprefix("x")
        if (not last and not group.startswith("x")) or not _GROUP.match(digits):
            raise UsageError(f"not a tile index in {path!r}")
        index = index * 1000 + int(digits)
    if not groups or index > _MAX_INDEX or tile_path(level, index, width) != path:
        raise UsageError(f"not a canonical tile path: {path!r}")
    return level, index, width


def tiles_for_size(size: int) -> Iterator[tuple[int, int, int]]:
    """(level, index, width) of every tile of the tree of ``size`` (tlog-tiles "Partial
    Tiles": level L has floor(size / 256**L) hashes)."""
    level = 0
    while count := size >> (TILE_HEIGHT * level):
        full, rest = divmod(count, TILE_WIDTH)
        yield from ((level, n, TILE_WIDTH) for n in range(full))
        if rest:
            yield level, full, rest
        level += 1


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries each prefixed by a big-endian uint16 length."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise UsageError(f"an entry of {len(entry)} bytes does not fit a bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, width: int) -> list[bytes]:
    """Exactly ``width`` entries from a bundle, nothing left over."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data) and len(entries) < width:
        size = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + size > len(data):
            raise ProofError("an entry bundle is truncated")
        entries.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    if len(entries) != width or pos != len(data):
        raise ProofError(f"an entry bundle does not hold exactly {width} entries")
    return entries

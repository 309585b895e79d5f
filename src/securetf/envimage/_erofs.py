"""Building the image's file system with ``mkfs.erofs`` (Debian's erofs-utils), reproducibly.

mkfs.erofs stamps the build time into the superblock, and its fixed-time options also set
every file's time, which would make every ``.pyc`` stale (Python then compiles each
module it imports, on every start). So files keep their times (``--preserve-mtime``, each
inode its own) and only the superblock's build time is set to zero afterwards, with its
checksum: the same tree gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from securetf.errors import UsageError

#: The superblock lies 1024 bytes into the first block; its fields are little-endian.
SUPER_OFFSET = 1024
MAGIC = 0xE0F5E1E2
_COMPAT_SB_CHKSUM = 0x1
_BUILD_TIME = 24  # u64 seconds, then u32 nanoseconds
UUID = "5ec07ef0-0000-4000-8000-000000000000"


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c_raw(data: bytes, crc: int = 0xFFFFFFFF) -> int:
    """The kernel's ``crc32c(~0, data)``: CRC-32C without the final inversion."""
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def mkfs_command() -> str:
    found = shutil.which("mkfs.erofs", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise UsageError(
            "securetf env pack needs mkfs.erofs: install Debian's erofs-utils "
            "(make setup installs it)"
        )
    return found


def build(tree: Path, output: Path) -> None:
    """Write the EROFS image of ``tree`` to ``output``, uncompressed, all files root's."""
    argv = [
        mkfs_command(),
        "--quiet",
        "--all-root",
        "-x-1",  # no extended attributes: nothing of the build host's labels
        "--preserve-mtime",
        f"-U{UUID}",
        str(output),
        str(tree),
    ]
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise UsageError(f"mkfs.erofs failed: {done.stderr.strip() or done.stdout.strip()}")
    _zero_build_time(output)


def _zero_build_time(image: Path) -> None:
    with open(image, "r+b") as f:
        f.seek(SUPER_OFFSET)
        head = f.read(16)
        magic, _checksum, compat, blkszbits = struct.unpack_from("<IIIB", head)
        if magic != MAGIC:
            raise UsageError(f"mkfs.erofs wrote no EROFS superblock to {image}")
        f.seek(SUPER_OFFSET)
        sb = bytearray(f.read((1 << blkszbits) - SUPER_OFFSET))
        struct.pack_into("<QI", sb, _BUILD_TIME, 0, 0)
        if compat & _COMPAT_SB_CHKSUM:
            sb[4:8] = bytes(4)
            struct.pack_into("<I", sb, 4, crc32c_raw(bytes(sb)))
        f.seek(SUPER_OFFSET)
        f.write(sb)

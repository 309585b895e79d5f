"""A tampered chunk is an I/O error for the program, which never gets a byte of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from securetf.crypto import TAG_SIZE
from securetf.shield.fs import mount
from securetf.volume import Volume, VolumeKey

from .conftest import CHUNK, errno_of

BAD = 5  # the tampered chunk


def _object_of(vol_dir: Path, key: VolumeKey, path: str) -> Path:
    with Volume.open(vol_dir, key) as vol:
        return vol._store.object_path(vol._files[path].object_id)


def _tamper(obj: Path, chunk: int) -> None:
    with open(obj, "r+b") as f:
        f.seek(chunk * (CHUNK + TAG_SIZE) + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))


def test_tampered_chunk_fails_with_eio_and_leaks_nothing(
    sealed: Path, key: VolumeKey, mnt: Path, tmp_path: Path
) -> None:
    big = (tmp_path / "src" / "data" / "sub" / "big.bin").read_bytes()
    _tamper(_object_of(sealed, key, "data/sub/big.bin"), BAD)
    with Volume.open(sealed, key) as vol, mount(vol, mnt, read_only=True):
        path = mnt / "data" / "sub" / "big.bin"
        # 1. Reading the whole file fails with EIO.
        assert errno_of(path.read_bytes) == errno.EIO
        # 2. Sequential reads: all bytes before the bad chunk come back intact, none after.
        got = bytearray()
        fd = os.open(path, os.O_RDONLY)
        try:

            def read_all() -> None:
                while chunk := os.read(fd, 4096):
                    got.extend(chunk)

            assert errno_of(read_all) == errno.EIO
            # 3. A read aimed inside the bad chunk fails too.
            assert errno_of(lambda: os.pread(fd, 10, BAD * CHUNK + 100)) == errno.EIO
            # 4. Chunks around it still read (only the damaged chunk is refused).
            assert os.pread(fd, 100, (BAD + 1) * CHUNK) == big[(BAD + 1) * CHUNK :][:100]
        finally:
            os.close(fd)
        assert len(got) <= BAD * CHUNK
        assert bytes(got) == big[: len(got)]
        # 5. Files that were not touched still read.
        assert (mnt / "data" / "hello.txt").read_bytes() == b"hello, shield\n"

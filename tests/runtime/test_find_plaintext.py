"""The host search the no-plaintext tests rely on finds what it must and skips only the old."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .support import find_plaintext, find_plaintext_on_host


def test_finds_a_needle_across_a_block_boundary(tmp_path: Path) -> None:
    needle = b"needle-" + os.urandom(8).hex().encode()
    path = tmp_path / "f"
    path.write_bytes(b"x" * ((1 << 20) - 5) + needle)
    assert find_plaintext([tmp_path], [needle]) == [f"{path}: {needle!r}"]


def test_a_file_changed_since_the_start_is_read_an_older_one_skipped(tmp_path: Path) -> None:
    needle = b"needle-" + os.urandom(8).hex().encode()
    started = time.time()
    (tmp_path / "new").write_bytes(needle)
    assert find_plaintext([tmp_path], [needle], started) == [f"{tmp_path / 'new'}: {needle!r}"]
    # The same file, as though it had been there long before the run: skipped.
    assert find_plaintext([tmp_path], [needle], started + 60) == []


def test_the_host_search_covers_tmp_and_the_private_roots(tmp_path: Path) -> None:
    needle = b"needle-" + os.urandom(8).hex().encode()
    started = time.time()
    private = tmp_path / "private"
    private.mkdir()
    (private / "old").write_bytes(needle)
    leak = Path("/dev/shm") / f"securetf-leak-{os.urandom(4).hex()}"
    leak.write_bytes(needle)
    try:
        # Private roots are read whatever their age; /dev/shm and /tmp for what changed.
        assert find_plaintext_on_host([private], [needle], started + 60) == [
            f"{private / 'old'}: {needle!r}"
        ]
        assert f"{leak}: {needle!r}" in find_plaintext_on_host([private], [needle], started)
    finally:
        leak.unlink()

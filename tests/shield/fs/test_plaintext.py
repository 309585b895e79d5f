"""Nothing written through the mount reaches storage in plaintext: contents or names."""

from __future__ import annotations

from pathlib import Path

from securetf.shield.fs import mount
from securetf.volume import Volume, VolumeKey

MARKER = b"PLAINTEXT-MARKER-7f3a9c"
NAME = "secret-name-b81d"


def test_sealed_directory_holds_no_plaintext(sealed: Path, key: VolumeKey, mnt: Path) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        m = mount(vol, mnt, read_only=False)
        (mnt / NAME).mkdir()
        (mnt / NAME / f"{NAME}.txt").write_bytes(MARKER * 10_000)
        with open(mnt / "partial.bin", "wb") as f:
            f.write(MARKER * 100)
            f.flush()
            # While still open and uncommitted, storage holds no plaintext either.
            _assert_clean(sealed)
        m.unmount()
    _assert_clean(sealed)


def _assert_clean(root: Path) -> None:
    for path in root.rglob("*"):
        assert NAME not in path.name
        if path.is_file():
            data = path.read_bytes()
            assert MARKER not in data
            assert NAME.encode() not in data
            assert b"shield" not in data  # from the sealed tree's hello.txt

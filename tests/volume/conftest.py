from __future__ import annotations

import os
from pathlib import Path

import pytest

from securetf.volume import VolumeKey, seal_tree

SMALL_CHUNK = 4096


@pytest.fixture
def key() -> VolumeKey:
    return VolumeKey(bytes(range(32)))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small tree: nested dirs, an empty dir, an empty file, multi-chunk files."""
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a" / "b" / "hello.txt").write_bytes(b"hello\n")
    (src / "a" / "big.bin").write_bytes(os.urandom(5 * SMALL_CHUNK + 123))
    (src / "twin1.bin").write_bytes(os.urandom(3 * SMALL_CHUNK))
    (src / "twin2.bin").write_bytes(os.urandom(3 * SMALL_CHUNK))
    (src / "zero").write_bytes(b"")
    return src


@pytest.fixture
def sealed(tree: Path, key: VolumeKey, tmp_path: Path) -> Path:
    dst = tmp_path / "sealed"
    seal_tree(tree, dst, key, chunk_size=SMALL_CHUNK)
    return dst


def object_of(vol_dir: Path, key: VolumeKey, path: str) -> Path:
    """The storage object that holds ``path`` (tests only: storage knows no names)."""
    from securetf.volume import Volume

    with Volume.open(vol_dir, key) as vol:
        entry = vol._files[path]
        return vol._store.object_path(entry.object_id)

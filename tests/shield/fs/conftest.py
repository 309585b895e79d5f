from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from securetf.shield.fs import Mount, mount
from securetf.volume import Volume, VolumeKey, seal_tree

CHUNK = 64 * 1024


def mounted_paths() -> set[str]:
    with open("/proc/self/mounts") as f:
        return {line.split()[1] for line in f}


@pytest.fixture
def key() -> VolumeKey:
    return VolumeKey(bytes(range(32)))


@pytest.fixture
def sealed(tmp_path: Path, key: VolumeKey) -> Path:
    """A committed volume with a small tree and a multi-chunk file."""
    src = tmp_path / "src"
    (src / "data" / "sub").mkdir(parents=True)
    (src / "data" / "hello.txt").write_bytes(b"hello, shield\n")
    (src / "data" / "sub" / "big.bin").write_bytes(os.urandom(10 * CHUNK + 123))
    (src / "empty").mkdir()
    seal_tree(src, tmp_path / "sealed", key, chunk_size=CHUNK)
    return tmp_path / "sealed"


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    assert str(path) not in mounted_paths(), "a mount was left behind"


@pytest.fixture
def rw(sealed: Path, key: VolumeKey, mnt: Path) -> Iterator[Mount]:
    with Volume.open(sealed, key, writable=True) as vol, mount(vol, mnt, read_only=False) as m:
        yield m


@pytest.fixture
def ro(sealed: Path, key: VolumeKey, mnt: Path) -> Iterator[Mount]:
    with Volume.open(sealed, key) as vol, mount(vol, mnt, read_only=True) as m:
        yield m


def errno_of(call: Callable[[], object]) -> int:
    """The errno of the OSError that ``call`` raises (fails the test if it raises none)."""
    try:
        call()
    except OSError as exc:
        return exc.errno or 0
    raise AssertionError("expected an OSError")

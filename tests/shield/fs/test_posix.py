"""Plain file operations through the mount behave exactly as on a plain directory."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from securetf.shield.fs import Mount
from securetf.volume import Volume, VolumeKey

from .conftest import errno_of


def _script(base: Path) -> list[object]:
    """A sequence of operations in a new directory of ``base``; what a program observes."""
    seen: list[object] = []
    root = base / "w"
    root.mkdir()
    (root / "d").mkdir()
    (root / "d" / "a.txt").write_text("alpha\n")
    with open(root / "d" / "a.txt", "ab") as f:
        f.write(b"beta\n")
    with open(root / "d" / "a.txt", "r+b") as f:
        f.seek(2)
        f.write(b"XY")
        f.seek(0)
        seen.append(f.read())
        f.truncate(4)
    seen.append((root / "d" / "a.txt").read_bytes())
    data = bytes(range(256)) * 2000  # 512,000 bytes: several chunks
    (root / "big.bin").write_bytes(data)
    with open(root / "big.bin", "r+b") as f:
        f.seek(300_000)
        f.write(b"middle")
        f.seek(-10, os.SEEK_END)
        seen.append(f.read())
        f.truncate(400_000)
        f.seek(0, os.SEEK_END)
        f.write(b"tail")
    with open(root / "big.bin", "rb") as f:
        f.seek(299_998)
        seen.append(f.read(10))
        seen.append(os.fstat(f.fileno()).st_size)
    os.rename(root / "d" / "a.txt", root / "b.txt")
    os.replace(root / "big.bin", root / "b.txt")
    seen.append(sorted(os.listdir(root)))
    seen.append(sorted(os.listdir(root / "d")))
    (root / "d" / "e").mkdir()
    (root / "d" / "e" / "f.txt").write_text("f")
    os.rename(root / "d", root / "renamed")
    seen.append(sorted(str(p.relative_to(root)) for p in root.rglob("*")))
    os.unlink(root / "renamed" / "e" / "f.txt")
    os.rmdir(root / "renamed" / "e")
    seen.append(sorted(os.listdir(root / "renamed")))
    seen.append(errno_of(lambda: os.rmdir(root / "nope")))
    seen.append(errno_of(lambda: os.rmdir(root / "b.txt")))
    (root / "renamed" / "x").write_text("x")
    seen.append(errno_of(lambda: os.rmdir(root / "renamed")))
    os.chmod(root / "b.txt", 0o600)
    seen.append(os.stat(root / "b.txt").st_mode & 0o777)
    seen.append(os.stat(root / "b.txt").st_size)
    return seen


def test_script_matches_a_plain_directory(rw: Mount, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert _script(rw.mountpoint) == _script(plain)


def test_committed_state_matches_and_reopens(
    rw: Mount, sealed: Path, key: VolumeKey, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    _script(rw.mountpoint)
    _script(plain)
    tag = rw.unmount()
    with Volume.open(sealed, key, expect_tag=tag) as vol:
        vol.verify()
        got = {f.path: vol.open_file(f.path).read() for f in vol.files()}
    want = {str(p.relative_to(plain)): p.read_bytes() for p in plain.rglob("*") if p.is_file()}
    for name in ("data/hello.txt", "data/sub/big.bin"):
        got.pop(name)
    assert got == want


def test_existing_files_read_back(ro: Mount, tmp_path: Path) -> None:
    root = ro.mountpoint
    assert (root / "data" / "hello.txt").read_bytes() == b"hello, shield\n"
    assert sorted(os.listdir(root)) == ["data", "empty"]
    assert os.listdir(root / "empty") == []
    big = (tmp_path / "src" / "data" / "sub" / "big.bin").read_bytes()
    with open(root / "data" / "sub" / "big.bin", "rb") as f:
        assert f.read() == big
        for off in (0, 1, 65_535, 65_536, 300_001, len(big) - 5):
            f.seek(off)
            assert f.read(70_000) == big[off : off + 70_000]


def test_missing_names_answer_enoent(ro: Mount) -> None:
    with pytest.raises(FileNotFoundError):
        (ro.mountpoint / "nope").read_bytes()


WRITES: list[Callable[[Path], object]] = [
    lambda r: (r / "new.txt").write_text("x"),
    lambda r: open(r / "data" / "hello.txt", "r+b"),  # noqa: SIM115
    lambda r: (r / "newdir").mkdir(),
    lambda r: os.unlink(r / "data" / "hello.txt"),
    lambda r: os.rename(r / "data" / "hello.txt", r / "x"),
    lambda r: os.truncate(r / "data" / "hello.txt", 0),
    lambda r: os.chmod(r / "data" / "hello.txt", 0o600),
    lambda r: os.rmdir(r / "empty"),
]


@pytest.mark.parametrize("change", WRITES)
def test_read_only_mount_refuses_changes_with_erofs(
    ro: Mount, change: Callable[[Path], object]
) -> None:
    assert errno_of(lambda: change(ro.mountpoint)) == errno.EROFS

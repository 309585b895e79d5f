from __future__ import annotations

import os
from pathlib import Path

import pytest

from securetf.errors import IntegrityError, UsageError
from securetf.volume import Volume, VolumeKey, seal_tree, unseal_tree

from .conftest import object_of


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    }


def test_seal_unseal_round_trip(sealed: Path, key: VolumeKey, tree: Path, tmp_path: Path) -> None:
    os.chmod(tree / "a/b/hello.txt", 0o750)
    out = tmp_path / "out"
    with Volume.open(sealed, key) as vol:
        unseal_tree(vol, out)
    assert _snapshot(out) == _snapshot(tree)
    assert (out / "zero").stat().st_size == 0
    assert (out / "empty").is_dir()


def test_modes_survive(tmp_path: Path, key: VolumeKey) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    seal_tree(src, tmp_path / "v", key)
    with Volume.open(tmp_path / "v", key) as vol:
        assert vol.stat("run.sh").mode == 0o755


def test_seal_refuses_existing_destination(tree: Path, sealed: Path, key: VolumeKey) -> None:
    before = _snapshot(sealed)
    with pytest.raises(UsageError, match="exists already"):
        seal_tree(tree, sealed, key)
    assert _snapshot(sealed) == before


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_seal_refuses_a_non_directory(tmp_path: Path, key: VolumeKey, kind: str) -> None:
    src = tmp_path / "src"
    if kind == "file":
        src.write_text("x")
    with pytest.raises(UsageError, match="seal takes a directory"):
        seal_tree(src, tmp_path / "v", key)
    assert not (tmp_path / "v").exists()


def test_seal_refuses_symlinks_and_leaves_nothing(
    tree: Path, tmp_path: Path, key: VolumeKey
) -> None:
    (tree / "link").symlink_to(tree / "zero")
    with pytest.raises(UsageError, match="symbolic link"):
        seal_tree(tree, tmp_path / "v", key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_unseal_failure_leaves_no_plaintext(
    sealed: Path, key: VolumeKey, tree: Path, tmp_path: Path
) -> None:
    obj = object_of(sealed, key, "twin2.bin")  # sorted after files that unseal fine
    data = bytearray(obj.read_bytes())
    data[-1] ^= 1
    obj.write_bytes(data)
    out = tmp_path / "out"
    with Volume.open(sealed, key) as vol, pytest.raises(IntegrityError):
        unseal_tree(vol, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sealed", "src"]


def test_unseal_refuses_existing_output(sealed: Path, key: VolumeKey, tmp_path: Path) -> None:
    with Volume.open(sealed, key) as vol, pytest.raises(UsageError, match="exists already"):
        unseal_tree(vol, tmp_path)

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from securetf.errors import Error, IntegrityError, UsageError
from securetf.volume import Volume, VolumeKey, scan_tree, seal_tree, unseal_tree
from securetf.volume._source import Tree

from .conftest import object_of
from .forge import Body, forge_volume


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


def test_plaintext_that_could_not_be_removed_is_named(
    sealed: Path, key: VolumeKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed unseal whose clean-up fails too must say where plaintext stayed."""
    obj = object_of(sealed, key, "twin2.bin")  # sorted after files that unseal fine
    data = bytearray(obj.read_bytes())
    data[-1] ^= 1
    obj.write_bytes(data)
    monkeypatch.setattr("securetf.volume._tree.shutil.rmtree", lambda *_a, **_k: None)
    with Volume.open(sealed, key) as vol, pytest.raises(Error, match="partial plaintext in"):
        unseal_tree(vol, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unseal_refuses_existing_output(sealed: Path, key: VolumeKey, tmp_path: Path) -> None:
    with Volume.open(sealed, key) as vol, pytest.raises(UsageError, match="exists already"):
        unseal_tree(vol, tmp_path)


_SPECIAL = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def test_seal_records_only_permission_bits(tmp_path: Path, key: VolumeKey) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, mode in [("suid", 0o4755), ("sgid", 0o2750), ("sticky", 0o1644)]:
        (src / name).write_text(name)
        os.chmod(src / name, mode)
    seal_tree(src, tmp_path / "v", key)
    with Volume.open(tmp_path / "v", key) as vol:
        assert {f.path: f.mode for f in vol.files()} == {
            "suid": 0o755,
            "sgid": 0o750,
            "sticky": 0o644,
        }


def test_unseal_never_sets_special_bits(sealed: Path, key: VolumeKey, tmp_path: Path) -> None:
    # A manifest may record 0o7777 (older writers, or a key holder's forgery); run as root,
    # unsealing it must not hand out a root-owned setuid program.
    def setuid(body: Body) -> None:
        for f in body["files"]:
            f["mode"] = 0o7755

    forge_volume(sealed, key, setuid)
    out = tmp_path / "out"
    with Volume.open(sealed, key) as vol:
        unseal_tree(vol, out)
        for p in [out, *out.rglob("*")]:
            assert not p.stat().st_mode & _SPECIAL, p
        assert stat.S_IMODE((out / "a/b/hello.txt").stat().st_mode) == 0o755
        assert {f.mode for f in vol.files()} == {0o755}


def test_unseal_directories_inherit_no_special_bits(
    sealed: Path, key: VolumeKey, tmp_path: Path
) -> None:
    # A new directory inherits setgid from its parent: the plaintext tree must not.
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o2777 | stat.S_ISVTX)
    out = parent / "out"
    with Volume.open(sealed, key) as vol:
        unseal_tree(vol, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in [out, *out.rglob("*")]:
        assert not p.stat().st_mode & _SPECIAL, p


# --- seal against a tree that changes under it ---------------------------------------
# The scan and the copy are two moments; whoever can write in SRC may swap an entry in
# between, hoping that seal (often run as root) reads a file from outside SRC. Each test
# takes the scan first, swaps, then seals with that scan: no timing involved.


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A directory outside the tree to seal, holding a file only root may read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"root's secret\n")
    os.chmod(outside / "secret", 0o600)
    return outside


def _seal_refuses(tree: Path, scan: Tree, key: VolumeKey, tmp_path: Path) -> None:
    dst = tmp_path / "v"
    with pytest.raises(UsageError, match="changed while sealing") as info:
        seal_tree(tree, dst, key, tree=scan)
    assert "Traceback" not in str(info.value)
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".v.")]


def test_seal_refuses_a_file_swapped_for_a_symlink(
    tree: Path, secret: Path, key: VolumeKey, tmp_path: Path
) -> None:
    scan = scan_tree(tree)
    (tree / "zero").unlink()
    (tree / "zero").symlink_to(secret / "secret")
    _seal_refuses(tree, scan, key, tmp_path)


def test_seal_refuses_a_file_swapped_for_another_file(
    tree: Path, secret: Path, key: VolumeKey, tmp_path: Path
) -> None:
    scan = scan_tree(tree)
    os.link(secret / "secret", tree / "zero.new")  # the same inode as the secret
    os.replace(tree / "zero.new", tree / "zero")
    _seal_refuses(tree, scan, key, tmp_path)


def test_seal_refuses_a_directory_swapped_for_a_symlink(
    tree: Path, key: VolumeKey, tmp_path: Path
) -> None:
    # Even leading to the very files scanned: seal reads nothing through a link.
    scan = scan_tree(tree)
    moved = tmp_path / "moved"
    os.rename(tree / "a", moved)
    (tree / "a").symlink_to(moved)
    _seal_refuses(tree, scan, key, tmp_path)


def test_seal_refuses_a_source_root_swapped_for_another(
    tree: Path, key: VolumeKey, tmp_path: Path
) -> None:
    scan = scan_tree(tree)
    os.rename(tree, tmp_path / "old")
    shutil.copytree(tmp_path / "old", tree)
    _seal_refuses(tree, scan, key, tmp_path)


@pytest.mark.timeout(20)
def test_seal_refuses_a_file_swapped_for_a_fifo_without_hanging(
    tree: Path, key: VolumeKey, tmp_path: Path
) -> None:
    scan = scan_tree(tree)
    (tree / "zero").unlink()
    os.mkfifo(tree / "zero")  # opening it for reading would wait for a writer for ever
    _seal_refuses(tree, scan, key, tmp_path)


class _SwapAfterStat:
    """``os.scandir`` whose entry ``name`` is swapped for a symlink to ``target`` right
    after the scanner stats it: the scanner has seen a directory, storage now has a link."""

    def __init__(self, root: Path, name: str, target: Path) -> None:
        self._real = os.scandir
        self._root, self._name, self._target = root, name, target
        self._swapped = False

    def __call__(self, where: Any) -> _Listing:
        return _Listing([_Entry(e, self) for e in self._real(where)])

    def stat_done(self, entry: os.DirEntry[str]) -> None:
        victim = self._root / self._name
        if entry.name == self._name and not self._swapped and victim.is_dir():
            self._swapped = True
            os.rename(victim, self._root.parent / "swapped-away")
            victim.symlink_to(self._target)


class _Entry:
    def __init__(self, entry: os.DirEntry[str], hook: _SwapAfterStat) -> None:
        self._entry, self._hook = entry, hook
        self.name, self.path = entry.name, entry.path

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        st = self._entry.stat(follow_symlinks=follow_symlinks)
        self._hook.stat_done(self._entry)
        return st

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._entry, attr)


class _Listing(list[_Entry]):
    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_scan_never_descends_through_a_symlink(
    tree: Path, secret: Path, key: VolumeKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "scandir", _SwapAfterStat(tree, "a", secret))
    with pytest.raises(UsageError, match="changed while sealing"):
        seal_tree(tree, tmp_path / "v", key)
    assert not (tmp_path / "v").exists()

"""Every way storage can alter a volume is detected, with one opaque error."""

from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securetf.crypto import TAG_SIZE
from securetf.errors import IntegrityError, RollbackError
from securetf.volume import Volume, VolumeKey
from securetf.volume._settings import MAX_MANIFEST_BYTES

from .conftest import SMALL_CHUNK, object_of

RECORD = SMALL_CHUNK + TAG_SIZE


def _fails_opaquely(vol_dir: Path, key: VolumeKey, path: str | None = None) -> None:
    """Both a full verify and a plain read of ``path`` raise the bare integrity error."""
    with Volume.open(vol_dir, key) as vol:
        with pytest.raises(IntegrityError) as info:
            vol.verify()
        assert type(info.value) is IntegrityError
        assert str(info.value) == "integrity check failed"
        if path is not None:
            with pytest.raises(IntegrityError) as info:
                vol.open_file(path).read()
            assert str(info.value) == "integrity check failed"


def test_untouched_volume_verifies(sealed: Path, key: VolumeKey, tree: Path) -> None:
    with Volume.open(sealed, key) as vol:
        checked: list[int] = []
        report = vol.verify(progress=checked.append)
        assert report.files == 5
        assert report.version == 1
        assert vol.open_file("a/big.bin").read() == (tree / "a/big.bin").read_bytes()
    # Progress is reported chunk by chunk and adds up to the content's size.
    assert sum(checked) == report.bytes
    assert len(checked) > report.files


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_flipped_bit_in_an_object(sealed: Path, key: VolumeKey, data: st.DataObject) -> None:
    obj = object_of(sealed, key, "a/big.bin")
    original = obj.read_bytes()
    bit = data.draw(st.integers(0, len(original) * 8 - 1))
    flipped = bytearray(original)
    flipped[bit // 8] ^= 1 << (bit % 8)
    obj.write_bytes(flipped)
    try:
        _fails_opaquely(sealed, key, "a/big.bin")
    finally:
        obj.write_bytes(original)


def test_swapped_chunks(sealed: Path, key: VolumeKey) -> None:
    obj = object_of(sealed, key, "a/big.bin")
    data = obj.read_bytes()
    obj.write_bytes(data[RECORD : 2 * RECORD] + data[:RECORD] + data[2 * RECORD :])
    _fails_opaquely(sealed, key, "a/big.bin")


def test_chunk_copied_from_another_file_at_same_index(sealed: Path, key: VolumeKey) -> None:
    a, b = object_of(sealed, key, "twin1.bin"), object_of(sealed, key, "twin2.bin")
    a.write_bytes(b.read_bytes()[:RECORD] + a.read_bytes()[RECORD:])
    _fails_opaquely(sealed, key, "twin1.bin")


def test_whole_files_of_equal_size_swapped(sealed: Path, key: VolumeKey) -> None:
    a, b = object_of(sealed, key, "twin1.bin"), object_of(sealed, key, "twin2.bin")
    da, db = a.read_bytes(), b.read_bytes()
    assert len(da) == len(db)
    a.write_bytes(db)
    b.write_bytes(da)
    _fails_opaquely(sealed, key, "twin1.bin")


@pytest.mark.parametrize("cut", [1, TAG_SIZE, RECORD, 2 * RECORD])
def test_truncated_file(sealed: Path, key: VolumeKey, cut: int) -> None:
    obj = object_of(sealed, key, "a/big.bin")
    obj.write_bytes(obj.read_bytes()[:-cut])
    _fails_opaquely(sealed, key, "a/big.bin")


def test_truncated_at_a_chunk_boundary_cannot_pose_as_complete(
    sealed: Path, key: VolumeKey
) -> None:
    # Dropping whole final records leaves a prefix of valid chunks; none is marked last.
    obj = object_of(sealed, key, "a/big.bin")
    data = obj.read_bytes()
    obj.write_bytes(data[: (len(data) // RECORD - 1) * RECORD])
    _fails_opaquely(sealed, key, "a/big.bin")


@pytest.mark.parametrize("extra", [b"\0", bytes(RECORD), os.urandom(RECORD)])
@pytest.mark.parametrize("path", ["a/big.bin", "zero"])
def test_extended_file(sealed: Path, key: VolumeKey, extra: bytes, path: str) -> None:
    # Bytes past the object's exact length are read by no chunk, so only a length check
    # made on every read path (not just by verify) can notice them.
    obj = object_of(sealed, key, path)
    obj.write_bytes(obj.read_bytes() + extra)
    _fails_opaquely(sealed, key, path)


def test_extended_file_is_refused_as_the_base_of_a_rewrite(sealed: Path, key: VolumeKey) -> None:
    obj = object_of(sealed, key, "a/big.bin")
    obj.write_bytes(obj.read_bytes() + bytes(RECORD))
    with Volume.open(sealed, key, writable=True) as vol:
        for mode in ("ab", "r+b"):
            with pytest.raises(IntegrityError):
                vol.open_file("a/big.bin", mode)


@pytest.mark.timeout(20)
def test_object_replaced_by_a_fifo_fails_without_hanging(sealed: Path, key: VolumeKey) -> None:
    obj = object_of(sealed, key, "a/b/hello.txt")
    obj.unlink()
    os.mkfifo(obj)  # opening a FIFO for reading blocks until a writer comes, for ever
    _fails_opaquely(sealed, key, "a/b/hello.txt")


def test_oversized_manifest_is_refused_without_reading_it(sealed: Path, key: VolumeKey) -> None:
    with (sealed / "securetf-volume").open("r+b") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: costs storage nothing, a reader 256 MiB
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError):
            Volume.open(sealed, key)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_deleted_file(sealed: Path, key: VolumeKey) -> None:
    object_of(sealed, key, "a/b/hello.txt").unlink()
    _fails_opaquely(sealed, key, "a/b/hello.txt")


def test_rolled_back_file(sealed: Path, key: VolumeKey, tmp_path: Path) -> None:
    old = object_of(sealed, key, "a/b/hello.txt")
    old_bytes = old.read_bytes()
    with Volume.open(sealed, key, writable=True) as vol:
        with vol.open_file("a/b/hello.txt", "wb") as f:
            f.write(b"HELLO\n")
        vol.commit()
    new = object_of(sealed, key, "a/b/hello.txt")
    assert new != old
    assert not old.exists()
    new.write_bytes(old_bytes)  # storage puts the old ciphertext back
    _fails_opaquely(sealed, key, "a/b/hello.txt")


def test_rolled_back_volume_is_refused_by_tag_and_version(
    sealed: Path, key: VolumeKey, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(sealed, backup)
    with Volume.open(sealed, key, writable=True) as vol:
        vol.remove("zero")
        new_tag = vol.commit()
    shutil.rmtree(sealed)
    shutil.copytree(backup, sealed)  # storage serves the whole older copy
    with pytest.raises(RollbackError):
        Volume.open(sealed, key, expect_tag=new_tag)
    with pytest.raises(RollbackError):
        Volume.open(sealed, key, min_version=2)


def test_manifest_of_another_volume_with_same_key(
    tree: Path, sealed: Path, key: VolumeKey, tmp_path: Path
) -> None:
    from securetf.volume import seal_tree

    other = tmp_path / "other"
    seal_tree(tree, other, key, chunk_size=SMALL_CHUNK)
    os.replace(other / "securetf-volume", sealed / "securetf-volume")
    _fails_opaquely(sealed, key, "a/big.bin")


@pytest.mark.parametrize("link", ["fan-out", "objects"])
def test_links_in_storage_cannot_make_a_writer_delete_elsewhere(
    sealed: Path, key: VolumeKey, tmp_path: Path, link: str
) -> None:
    # A writer deletes objects no state references; storage points a fan-out directory
    # (or all of objects/) at a directory of object-shaped names it could not touch. The
    # fan-out directory is one the volume does not use (its objects' names are random).
    fan = next(f"{i:02x}" for i in range(256) if not (sealed / "objects" / f"{i:02x}").exists())
    victim = tmp_path / "victim"
    (victim / fan).mkdir(parents=True)
    names = [victim / fan / ("c" * 30), victim / (fan + "d" * 30)]
    for name in names:
        name.write_bytes(b"not yours")
    if link == "objects":
        shutil.rmtree(sealed / "objects")
        (sealed / "objects").symlink_to(victim)
    else:
        (sealed / "objects" / fan).symlink_to(victim / fan)
    with Volume.open(sealed, key, writable=True):
        pass
    assert all(name.exists() for name in names)

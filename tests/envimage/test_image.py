"""The environment image: what it holds, its measurement, and its refusals.

Attacks of the storage admin, who stores the image and may change any byte of it: a
changed file byte, a changed description (which programs it holds), a changed hash list,
a truncated or extended image, another image in its place. Each is refused when the image
is opened against its measurement, or when the changed chunk is read.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

import pytest

from securetf.envimage import EnvImage, describe, pack
from securetf.envimage._format import TRAILER, Layout
from securetf.errors import IntegrityError, UsageError
from tests.envsupport import EXCLUDE, PROBE, PROBE_SOURCE, Packed, make_image, make_venv


def _copy(packed: Packed, tmp_path: Path) -> Path:
    target = tmp_path / "copy.img"
    shutil.copyfile(packed.image, target)
    return target


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def _layout(path: Path) -> Layout:
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(size - TRAILER.size)
        return Layout.parse(f.read(TRAILER.size), size)


def test_a_venv_image_holds_the_venv_its_interpreter_and_standard_library(
    packed_env: Packed,
) -> None:
    env = describe(packed_env.venv, EXCLUDE)
    stdlib = f"{sys.base_prefix}/lib/python{sys.version_info.major}.{sys.version_info.minor}"
    assert str(packed_env.venv) in env.roots
    assert stdlib in env.roots
    assert os.path.realpath(sys.executable) in env.roots or any(
        os.path.realpath(sys.executable).startswith(r + "/") for r in env.roots
    )
    # The base's own packages are not the venv's: left out.
    assert f"{stdlib}/site-packages" in env.excluded
    image = EnvImage.open(packed_env.image, expect=packed_env.digest)
    try:
        assert image.meta.roots == env.roots
        assert image.meta.python == str(packed_env.venv / "bin" / "python")
        assert f"{packed_env.venv}/bin/python" in image.meta.executables
    finally:
        image.close()


def test_the_same_environment_packs_to_the_same_measurement(
    packed_env: Packed, tmp_path: Path
) -> None:
    again = pack(packed_env.venv, tmp_path / "again.img", EXCLUDE)
    assert again == packed_env.digest


def test_a_changed_module_changes_the_measurement(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    first = make_image(venv, tmp_path / "a.img")
    site = next(venv.glob("lib/python*/site-packages"))
    (site / f"{PROBE}.py").write_text(PROBE_SOURCE.replace("from-image", "from-elsewhere"))
    assert make_image(venv, tmp_path / "b.img") != first


def test_another_image_is_refused_naming_both_measurements(packed_env: Packed) -> None:
    other = bytes(32)
    with pytest.raises(IntegrityError) as info:
        EnvImage.open(packed_env.image, expect=other)
    assert "sha256:" + packed_env.digest.hex() in str(info.value)
    assert "sha256:" + other.hex() in str(info.value)


def test_a_changed_file_byte_fails_the_read_of_its_chunk(
    packed_env: Packed, tmp_path: Path
) -> None:
    image_path = _copy(packed_env, tmp_path)
    data = image_path.read_bytes()
    at = data.index(b"probe-from-image")
    _flip(image_path, at)
    image = EnvImage.open(image_path, expect=packed_env.digest)  # the hash list is intact
    try:
        chunk = at // image.layout.chunk_size
        image.read_chunk(chunk - 1 if chunk else chunk + 1)  # other chunks still read
        with pytest.raises(IntegrityError, match=f"chunk {chunk} "):
            image.read_chunk(chunk)
        with pytest.raises(IntegrityError):
            image.verify_all()
    finally:
        image.close()


@pytest.mark.parametrize("part", ["meta", "hashes"])
def test_a_changed_description_or_hash_list_changes_the_measurement(
    packed_env: Packed, tmp_path: Path, part: str
) -> None:
    image_path = _copy(packed_env, tmp_path)
    layout = _layout(image_path)
    offset = layout.data_padded + (0 if part == "meta" else layout.meta_size + 5)
    _flip(image_path, offset)
    with pytest.raises(IntegrityError, match="but the policy pins"):
        EnvImage.open(image_path, expect=packed_env.digest)


@pytest.mark.parametrize("change", ["truncate", "extend", "trailer"])
def test_a_truncated_extended_or_garbled_image_is_refused(
    packed_env: Packed, tmp_path: Path, change: str
) -> None:
    image_path = _copy(packed_env, tmp_path)
    size = image_path.stat().st_size
    with open(image_path, "r+b") as f:
        if change == "truncate":
            f.truncate(size - 4096)
        elif change == "extend":
            f.seek(0, 2)
            f.write(b"\0" * 4096)
        else:
            f.seek(size - TRAILER.size + 8)
            f.write(struct.pack(">I", 1 << 30))  # an absurd chunk size
    with pytest.raises((IntegrityError, UsageError)):
        EnvImage.open(image_path, expect=packed_env.digest)


def test_a_file_that_is_no_image_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "not.img"
    path.write_bytes(b"x" * 100)
    with pytest.raises(UsageError, match="not a securetf environment image"):
        EnvImage.open(path)
    with pytest.raises(UsageError, match="does not exist"):
        EnvImage.open(tmp_path / "missing.img")


def test_pack_refuses_what_it_cannot_pack(packed_env: Packed, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="exists already"):
        pack(packed_env.venv, packed_env.image)
    with pytest.raises(UsageError, match="inside the environment"):
        pack(packed_env.venv, packed_env.venv / "env.img")
    empty = tmp_path / "empty"
    (empty / "lib" / "python3.11").mkdir(parents=True)
    with pytest.raises(UsageError, match="no bin/python"):
        pack(empty, tmp_path / "x.img")
    with pytest.raises(UsageError, match="not a directory"):
        pack(tmp_path / "missing", tmp_path / "y.img")
    assert not (tmp_path / "x.img").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".securetf-pack-")]


def test_pack_warns_of_files_the_program_could_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    venv = make_venv(tmp_path / "venv")
    site = next(venv.glob("lib/python*/site-packages"))
    secret = site / "private_module.py"
    secret.write_text("X = 1\n")
    secret.chmod(0o600)
    with caplog.at_level("WARNING", logger="securetf.envimage"):
        make_image(venv, tmp_path / "env.img")
    assert "not readable by others" in caplog.text
    assert str(secret) in caplog.text

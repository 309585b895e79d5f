"""An environment image mounted through the shield: the files as packed, read-only, and a
changed byte on storage fails the read that meets it with EIO (the rest still reads).

Real mounts: the shield's FUSE file, a loop device and the kernel's EROFS.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.envimage import EnvImage
from securetf.shield.fs import ImageMount, mount_image
from tests.envsupport import PROBE, PROBE_SOURCE, Packed

from .conftest import mounted_paths


def _loops_backed_by(path: Path) -> list[str]:
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().strip() == str(path):
                found.append(backing.parent.parent.name)
        except OSError:
            continue
    return found


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    verified, target = tmp_path / "verified", tmp_path / "env"
    verified.mkdir()
    target.mkdir()
    yield verified, target
    assert not {str(verified), str(target)} & mounted_paths(), "a mount was left behind"
    assert not _loops_backed_by(verified / "image"), "a loop device was left behind"


def _probe(packed: Packed, target: Path) -> Path:
    site = next(packed.venv.glob("lib/python*/site-packages"))
    return target / str(site).lstrip("/") / f"{PROBE}.py"


def test_the_image_shows_the_environment_read_only(
    packed_env: Packed, dirs: tuple[Path, Path]
) -> None:
    verified, target = dirs
    m: ImageMount = mount_image(EnvImage.open(packed_env.image, packed_env.digest), *dirs)
    try:
        assert _probe(packed_env, target).read_text() == PROBE_SOURCE
        python = target / str(packed_env.venv).lstrip("/") / "bin" / "python"
        assert python.is_symlink()
        with pytest.raises(OSError, match="Read-only file system") as info:
            (target / str(packed_env.venv).lstrip("/") / "new.txt").write_text("x")
        assert info.value.errno == errno.EROFS
        with pytest.raises(OSError, match=r"Read-only|Permission") as info:
            (verified / "image").open("r+b")
        assert info.value.errno in (errno.EROFS, errno.EACCES)
        assert m.ops.failed == 0
    finally:
        m.close()


def test_a_flipped_byte_gives_eio_and_only_there(
    packed_env: Packed, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    image = tmp_path / "flipped.img"
    shutil.copyfile(packed_env.image, image)
    data = image.read_bytes()
    at = data.index(b"probe-from-image")
    with open(image, "r+b") as f:
        f.seek(at)
        f.write(b"P")
    # Opening checks the measurement: the hash list is intact, so it is accepted ...
    m = mount_image(EnvImage.open(image, packed_env.digest), *dirs)
    try:
        # ... and the changed chunk fails when read.
        with pytest.raises(OSError, match="Input/output error") as info:
            _probe(packed_env, dirs[1]).read_bytes()
        assert info.value.errno == errno.EIO
        assert m.ops.failed >= 1
        # Files in other chunks still read.
        stdlib = next(Path(dirs[1]).glob("**/lib/python3*/os.py"))
        assert b"def makedirs" in stdlib.read_bytes()
    finally:
        m.close()

"""An environment image mounted through the shield: the files as packed, read-only, and a
changed byte on storage fails the read that meets it with EIO (the rest still reads).

Real mounts: the shield's FUSE file and the kernel's EROFS on it (or on a loop device).
"""

from __future__ import annotations

import ctypes
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securetf.envimage import EnvImage
from securetf.shield.fs import ImageMount, _image, mount_image
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


class _NoFileBackedMounts:
    """The C library's mount(2), but as a kernel before 6.12 answers a regular file."""

    def __init__(self, libc: Any) -> None:
        self._libc = libc

    def mount(self, source: bytes, *args: Any) -> int:
        if source.endswith(b"/image"):
            ctypes.set_errno(errno.ENOTBLK)
            return -1
        return int(self._libc.mount(source, *args))


def test_without_file_backed_mounts_a_loop_device_serves_and_goes(
    packed_env: Packed, dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_image, "_libc", _NoFileBackedMounts(_image._libc))
    m = mount_image(EnvImage.open(packed_env.image, packed_env.digest), *dirs)
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        source = next(line.split()[0] for line in mounts if line.split()[1] == str(dirs[1]))
        assert source.startswith("/dev/loop")
        assert _probe(packed_env, dirs[1]).read_text() == PROBE_SOURCE
    finally:
        m.close()

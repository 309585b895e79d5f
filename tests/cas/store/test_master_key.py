"""The master key file: created once, mode 0600, refused when it is unsafe or damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from securetf.cas.master_key import MASTER_KEY_FILE, MasterKey
from securetf.errors import UsageError


def test_created_once_then_loaded(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "cas"
    first = MasterKey.load_or_create(data_dir)
    path = data_dir / MASTER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert [p.name for p in data_dir.iterdir()] == [MASTER_KEY_FILE]  # no temp file left
    second = MasterKey.load_or_create(data_dir)
    info = b"test"
    assert first.derive(salt=b"s", info=info) == second.derive(salt=b"s", info=info)
    assert first.derive(salt=b"s", info=info) != MasterKey.generate().derive(salt=b"s", info=info)


def test_repr_hides_the_key() -> None:
    assert repr(MasterKey(bytes(32))) == "MasterKey(<hidden>)"


def test_group_readable_file_is_refused(tmp_path: Path) -> None:
    MasterKey.load_or_create(tmp_path)
    os.chmod(tmp_path / MASTER_KEY_FILE, 0o640)
    with pytest.raises(UsageError, match="chmod 600"):
        MasterKey.load_or_create(tmp_path)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / MASTER_KEY_FILE
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(UsageError, match=f"holds {size} bytes"):
        MasterKey.load_or_create(tmp_path)


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(bytes(32))
    target.chmod(0o600)
    (tmp_path / MASTER_KEY_FILE).symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        MasterKey.load_or_create(tmp_path)


def test_key_size_is_checked() -> None:
    with pytest.raises(UsageError):
        MasterKey(bytes(16))

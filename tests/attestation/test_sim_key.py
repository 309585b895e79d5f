"""The simulated platform key file: created once, private, found through $SECURETF_HOME."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from securetf.attestation import default_sim_trust, load_or_create_platform_key
from securetf.attestation.sim_key import KEY_FILE, securetf_home
from securetf.errors import UsageError


def test_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_or_create_platform_key(home)
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert load_or_create_platform_key(home).verify_key() == key.verify_key()


def test_default_trust_is_exactly_the_local_key(tmp_path: Path) -> None:
    key = load_or_create_platform_key(tmp_path)
    assert default_sim_trust(tmp_path) == frozenset({key.verify_key()})


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    load_or_create_platform_key(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        load_or_create_platform_key(tmp_path)


def test_a_corrupt_key_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"garbage")
    path.chmod(0o600)
    with pytest.raises(UsageError):
        load_or_create_platform_key(tmp_path)


def test_home_comes_from_the_environment(tmp_path: Path) -> None:
    assert securetf_home({"SECURETF_HOME": str(tmp_path)}) == tmp_path
    assert securetf_home({}) == Path.home() / ".config" / "securetf"

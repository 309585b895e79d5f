"""The policy keys of the program's confinement: ``path``, ``tmpfs``, ``user`` and
``output``, strictly checked, and PATH settable only through ``path`` (where ``command[0]``
is looked up too)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from securetf.policy import SealedOutput, Service, Tmpfs, User, limits

BASE: dict[str, Any] = {"measurement": "sha256:" + "0" * 64, "command": ["python"]}


def test_defaults() -> None:
    service = Service.model_validate(BASE)
    assert service.path is None
    assert service.tmpfs == Tmpfs(tmp="256m", var_tmp="64m", home="256m", shm="64m")
    assert service.user == User(uid=65532, gid=65532)
    assert service.output == "operator"


def test_a_user_is_taken() -> None:
    service = Service.model_validate({**BASE, "user": {"uid": 1000, "gid": 100}})
    assert (service.user.uid, service.user.gid) == (1000, 100)
    assert Service.model_validate({**BASE, "user": {"uid": 1000}}).user.gid == 65532


@pytest.mark.parametrize(
    ("user", "error"),
    [
        ({"uid": 0}, "root"),
        ({"gid": 0}, "root"),
        ({"uid": 65534}, "nobody"),
        ({"gid": 65534}, "nobody"),
        ({"uid": -1}, "greater than or equal to 0"),
        ({"uid": 2**31}, "less than or equal to"),
        ({"uid": "1000"}, "valid integer"),
        ({"uid": 1000.0}, "valid integer"),
        ({"uid": True}, "valid integer"),
        ({"name": "app"}, "Extra inputs"),
    ],
)
def test_a_privileged_or_bad_user_is_refused(user: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Service.model_validate({**BASE, "user": user})


@pytest.mark.parametrize("output", ["operator", "none"])
def test_an_output_mode_is_taken(output: str) -> None:
    assert Service.model_validate({**BASE, "output": output}).output == output


def test_a_sealed_output_is_taken() -> None:
    service = Service.model_validate({**BASE, "output": {"sealed": "model/logs/a b.log"}})
    assert service.output == SealedOutput(sealed="model/logs/a b.log")
    assert isinstance(service.output, SealedOutput)
    assert (service.output.volume, service.output.path) == ("model", "logs/a b.log")


@pytest.mark.parametrize(
    "output",
    [
        "sealed",
        "operator ",
        "",
        None,
        True,
        ["none"],
        {"sealed": "model"},
        {"sealed": "model/" + "a/" * 2048 + "x"},
        {"sealed": "model/x", "also": "y"},
        {"none": True},
    ],
)
def test_a_bad_output_is_refused(output: object) -> None:
    with pytest.raises(ValidationError):
        Service.model_validate({**BASE, "output": output})


def test_the_longest_output_name_is_the_limit() -> None:
    longest = "a" * limits.MAX_VOLUME_NAME_BYTES
    taken = Service.model_validate({**BASE, "output": {"sealed": f"model/{longest}"}}).output
    assert isinstance(taken, SealedOutput)
    assert taken.path == longest
    with pytest.raises(ValidationError, match="at most"):
        Service.model_validate({**BASE, "output": {"sealed": f"model/{longest}a"}})
    # Bytes count, not characters: 128 two-byte characters are 256 bytes.
    with pytest.raises(ValidationError, match="at most"):
        Service.model_validate({**BASE, "output": {"sealed": "model/" + "é" * 128}})


def test_path_and_sizes_are_taken() -> None:
    service = Service.model_validate(
        {**BASE, "path": "/opt/venv/bin:/usr/bin", "tmpfs": {"tmp": "2g", "shm": "512k"}}
    )
    assert service.path == "/opt/venv/bin:/usr/bin"
    assert (service.tmpfs.tmp, service.tmpfs.shm, service.tmpfs.home) == ("2g", "512k", "256m")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("", "at least 1 character"),
        ("/usr/bin:", "empty entry"),
        (":/usr/bin", "empty entry"),
        ("/usr/bin::/bin", "empty entry"),
        ("bin:/usr/bin", "absolute directories only"),
        (".:/usr/bin", "absolute directories only"),
        ("/usr/bin/../sbin", "normalized"),
        ("/usr/bin/", "normalized"),
        ("/usr/bin\x00", "NUL"),
        ("/" + "a" * limits.MAX_TEXT_LENGTH, "at most"),
    ],
)
def test_a_bad_path_is_refused(path: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Service.model_validate({**BASE, "path": path})


@pytest.mark.parametrize(
    "size", ["", "10", "0m", "01m", "1.5g", "1G", "1t", "-1m", "1025g", " 1m", 256]
)
def test_a_bad_size_is_refused(size: object) -> None:
    with pytest.raises(ValidationError):
        Service.model_validate({**BASE, "tmpfs": {"tmp": size}})


def test_the_largest_size_is_the_limit() -> None:
    top = f"{limits.MAX_TMPFS_BYTES // 1024**3}g"
    assert Service.model_validate({**BASE, "tmpfs": {"home": top}}).tmpfs.home == top
    above = f"{limits.MAX_TMPFS_BYTES // 1024 + 1}k"
    with pytest.raises(ValidationError, match="at most"):
        Service.model_validate({**BASE, "tmpfs": {"home": above}})


def test_unknown_tmpfs_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Service.model_validate({**BASE, "tmpfs": {"data": "1g"}})


def test_path_in_the_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="'path' key"):
        Service.model_validate({**BASE, "environment": {"PATH": "/usr/bin"}})
    # Other variables, HOME included, are the policy's to set.
    service = Service.model_validate({**BASE, "environment": {"HOME": "/data"}})
    assert service.environment == {"HOME": "/data"}

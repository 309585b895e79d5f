"""The runtime's side of the program's output: the configuration it accepts, and the
sealed log's file and pipe (here on a plain directory; tests/runtime/
test_confinement_output.py runs them through the file system shield)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import pytest

from securetf.errors import AttestationError, UsageError
from securetf.policy import SealedOutput
from securetf.protocol import ServiceConfig, VolumeGrant
from securetf.runtime._output import POLL_MS, SealedLog, output_of


def _config(
    output: object, mode: Literal["ro", "rw"] = "rw", *, code: bool = False
) -> ServiceConfig:
    grant = VolumeGrant(
        key=bytes(32), tag=None, version=0, rollback="none", path="/model", mode=mode, code=code
    )
    return ServiceConfig.model_validate(
        {
            "policy": "p",
            "policy_version": 1,
            "service": "s",
            "instance": 0,
            "command": ["python"],
            "environment": {},
            "files": {},
            "volumes": {"model": grant},
            "output": output,
        }
    )


def test_the_configured_output_is_taken() -> None:
    for form in ("operator", "none"):
        config = _config(form)
        assert output_of(config) == form
    config = _config({"sealed": "model/logs/run.log"})
    assert output_of(config) == SealedOutput(sealed="model/logs/run.log")


@pytest.mark.parametrize(
    ("output", "mode", "code"),
    [
        ({"sealed": "model/run.log"}, "ro", False),  # read-only
        ({"sealed": "model/run.log"}, "ro", True),  # the code volume
        ({"sealed": "other/run.log"}, "rw", False),  # not the service's
        ({"sealed": "model/../x"}, "rw", False),  # not a path inside the volume
        ("tty", "rw", False),  # a form this runtime does not know
    ],
)
def test_a_configuration_the_policy_would_refuse_is_refused(
    output: object, mode: Literal["ro", "rw"], code: bool
) -> None:
    """The CAS checked the policy; the runtime does not rely on that alone."""
    config = _config(output, mode, code=code)
    with pytest.raises(AttestationError):
        output_of(config)


def _finish(log: SealedLog, *chunks: bytes) -> None:
    for chunk in chunks:
        os.write(log.write_end, chunk)
    os.close(log.write_end)  # what launch does once the program has it
    log.finish()


def test_output_is_appended_to_what_the_file_held(tmp_path: Path) -> None:
    output = SealedOutput(sealed="model/logs/deep/run.log")
    _finish(SealedLog.open(tmp_path, output), b"first run\n")
    target = tmp_path / "logs" / "deep" / "run.log"
    assert target.stat().st_mode & 0o777 == 0o600
    big = os.urandom(300_000)  # more than a pipe holds: the reader drains while it is written
    log = SealedLog.open(tmp_path, output)
    _finish(log, b"second run\n", big)
    assert log.written == len(b"second run\n") + len(big)
    assert target.read_bytes() == b"first run\nsecond run\n" + big


@pytest.mark.parametrize("where", ["a-directory", "a-file/below"])
def test_a_path_the_volume_cannot_hold_stops_the_run(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UsageError, match="the program was not started"):
        SealedLog.open(tmp_path, SealedOutput(sealed=f"model/{where}"))


def test_a_symbolic_link_at_the_path_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "run.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError):
        SealedLog.open(tmp_path, SealedOutput(sealed="model/run.log"))


def test_a_writer_left_outside_the_program_does_not_hold_the_run(tmp_path: Path) -> None:
    log = SealedLog.open(tmp_path, SealedOutput(sealed="model/run.log"))
    kept = os.dup(log.write_end)  # as if something outside the program's namespace held it
    try:
        os.write(kept, b"before the end\n")
        started = time.monotonic()
        _finish(log)
        assert time.monotonic() - started < 5 * POLL_MS / 1000
        assert (tmp_path / "run.log").read_bytes() == b"before the end\n"
    finally:
        os.close(kept)

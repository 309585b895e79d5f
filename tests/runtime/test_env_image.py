"""The program runs on the environment image the policy pins, and on nothing else.

Attacks of the operator, who stores the image and starts the runtime: another image in
the pinned one's place (refused before the program starts), no image at all, an image for
a service that pins none. And the program's view: its interpreter and libraries come from
the image, and securetf's own (unmeasured) Python environment is not there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from securetf.envimage import EnvImage
from securetf.runtime import measure
from tests.envsupport import PROBE, Packed, make_image, make_venv

from .support import Job, dataset_csv, markers

NewJob = Callable[..., Job]

PROGRAM = f"""
import json, os, sys
import {PROBE}
print("@marker started", json.dumps({{
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "probe": {PROBE}.__file__,
    "host_env": os.path.exists(sys.argv[1]),
}}), flush=True)
"""


def _job(new_job: NewJob, image: Path) -> Job:
    return new_job(
        app_files={"prog.py": PROGRAM},
        services={"env": ["python", "prog.py", sys.prefix]},
        dataset={"table.csv": dataset_csv("env-image")},
        env_image=image,
    )


def test_the_program_runs_on_the_pinned_image(new_job: NewJob, packed_env: Packed) -> None:
    job = _job(new_job, packed_env.image)
    proc = job.run("env")
    assert proc.returncode == 0, proc.stderr
    seen = markers(proc.stdout)["started"]
    assert isinstance(seen, dict)
    assert seen["prefix"] == str(packed_env.venv)
    assert seen["executable"] == f"{packed_env.venv}/bin/python"
    assert str(seen["probe"]).startswith(str(packed_env.venv))
    # securetf's own environment, which no measurement covers, is not in the view.
    assert seen["host_env"] is False


def test_another_image_is_refused_before_the_program_starts(
    new_job: NewJob, packed_env: Packed, tmp_path: Path
) -> None:
    job = _job(new_job, packed_env.image)
    other = tmp_path / "other.img"
    make_image(make_venv(tmp_path / "venv"), other)
    job.env_image = other
    proc = job.run("env")
    assert proc.returncode == 3, proc.stderr
    assert "but the policy pins sha256:" + packed_env.digest.hex() in proc.stderr
    assert not job.started()


def test_no_image_or_an_unpinned_one_is_a_usage_error(new_job: NewJob, packed_env: Packed) -> None:
    job = _job(new_job, packed_env.image)
    job.env_image = None
    proc = job.run("env")
    assert proc.returncode == 2
    assert "give it with --env-image PATH" in proc.stderr
    plain = new_job(
        app_files={"prog.py": PROGRAM},
        services={"env": ["python", "prog.py", sys.prefix]},
        dataset={"table.csv": dataset_csv("env-image")},
    )
    proc = plain.run("env", extra=["--env-image", str(packed_env.image)])
    assert proc.returncode == 2
    assert "pins no environment image" in proc.stderr
    assert not plain.started()


def test_measure_takes_the_image(new_job: NewJob, packed_env: Packed) -> None:
    job = _job(new_job, packed_env.image)
    args: list[str | Path] = ["measure", "--policy", job.policy_file, "--service", "env"]
    args += ["--app", job.app]
    with_image = job.dep.cli(*args, "--env-image", packed_env.image)
    assert with_image.stdout.strip() == job.policy_measurement("env")
    assert f"runs {packed_env.venv}/bin/python" in with_image.stderr
    without = job.dep.cli(*args, ok=False)
    assert without.returncode == 2
    assert "--env-image" in without.stderr


def test_the_measurement_names_the_image(packed_env: Packed, tmp_path: Path) -> None:
    """The evidence binds the image: the same app and command on another image measure
    differently (the pin is not the only thing that tells them apart)."""
    (tmp_path / "prog.py").write_text("print('hi')\n")
    command = ["python", "prog.py"]
    image, other = EnvImage.open(packed_env.image), EnvImage.open(packed_env.image)
    try:
        other.digest = bytes(32)  # the same files and programs, another measurement
        on_image = measure(tmp_path, command, image=image)
        assert on_image == measure(tmp_path, command, image=image)
        assert on_image != measure(tmp_path, command, image=other)
    finally:
        image.close()
        other.close()

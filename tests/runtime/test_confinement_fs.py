"""The program sees only what it needs, and writes nowhere but its volumes and memory.

Attacks of the operator, who holds the environment of ``securetf run`` (PATH, HOME, every
variable) and the host's disk: a ``python`` planted first on PATH, a ``usercustomize.py``
and a ``.pth`` file in HOME's user site, a Keras configuration in HOME, variables of its
own shell. And a program whose writes outside its volumes (a cache, a temporary file, a
file beside its code) would land on the host's disk, where the operator reads them.

Each attack has a positive control: the same plant, or the same program, outside securetf
does what the test then shows securetf prevents, so the test can see the effect it checks
for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import VENV_BIN, Job, fast_job_args

NewJob = Callable[..., Job]

#: Prints one line ``@probe <json>``: what the program sees and where its writes went.
PROBE = r"""
import errno, json, os, sys

name = sys.argv[1]
out = {"env": dict(os.environ), "cwd": os.getcwd()}
keras_json = os.path.join(os.path.expanduser("~"), ".keras", "keras.json")
try:
    out["keras_json"] = open(keras_json).read()
except OSError as exc:
    out["keras_json"] = errno.errorcode[exc.errno]
targets = ["/tmp", "/var/tmp", "/root", "/etc", os.path.dirname(os.getcwd())]
targets += os.environ.get("HOST_DIRS", "").split(":")
writes = {}
for directory in targets:
    path = os.path.join(directory, name)
    try:
        with open(path, "w") as f:
            f.write("written by the program\n")
        writes[path] = "written"
    except OSError as exc:
        writes[path] = errno.errorcode[exc.errno]
# What Keras does with its home: a cache in ~/.keras, or /tmp/.keras when that fails.
for cache in (os.path.join(os.path.expanduser("~"), ".keras"), "/tmp/.keras"):
    try:
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, name), "w") as f:
            f.write("cache\n")
        writes[os.path.join(cache, name)] = "written"
    except OSError as exc:
        writes[os.path.join(cache, name)] = errno.errorcode[exc.errno]
out["writes"] = writes
out["usercustomize"] = "usercustomize" in sys.modules
print("@probe " + json.dumps(out), flush=True)
"""

PLANTED_INTERPRETER = """#!/bin/sh
echo PLANTED-INTERPRETER-RAN
echo ran > {flag}
exec {python} "$@"
"""

#: Only inside the program (its policy sets DATA_DIR): the runtime, started by the operator
#: with the same HOME, is no part of what these tests check.
PLANTED_USERCUSTOMIZE = """import os
if "DATA_DIR" in os.environ:
    print("PLANTED-USERCUSTOMIZE-RAN", os.environ.get("API_TOKEN"), flush=True)
    try:
        open({flag!r}, "w").close()
    except OSError:
        pass
"""

PLANTED_PTH = 'import os; "DATA_DIR" in os.environ and print("PLANTED-PTH-RAN", flush=True)\n'

OPERATOR_ENV = {
    "SECRET_FROM_OPERATOR": "operator-secret-value",
    "TERM": "operator-term",
    "TZ": "Operator/Zone",
    "LANG": "operator_LANG.UTF-8",
    "PYTHONSTARTUP": "/operator/startup.py",
}

#: The interpreter behind the virtual environment, whose user site is enabled.
BASE_PYTHON = Path(os.path.realpath(sys.executable))

MARKERS = ("PLANTED-INTERPRETER-RAN", "PLANTED-USERCUSTOMIZE-RAN", "PLANTED-PTH-RAN")


def _probe(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.startswith("@probe ")]
    assert len(lines) == 1, stdout
    found: dict[str, object] = json.loads(lines[0].split(" ", 1)[1])
    return found


def _user_site(home: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return home / ".local" / "lib" / version / "site-packages"


class Plants:
    """The operator's planted interpreter, user site and Keras config, for one job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.name = f"probe-{os.urandom(4).hex()}"  # of the files the probe writes
        self.bin = job.root / "operator-bin"
        self.home = job.root / "operator-home"
        self.flags = job.root / "flags"
        self.bin.mkdir()
        self.flags.mkdir()
        for name in ("python", "python3"):
            exe = self.bin / name
            exe.write_text(
                PLANTED_INTERPRETER.format(
                    flag=self.flags / "interpreter", python=VENV_BIN / "python"
                )
            )
            exe.chmod(0o755)
        site = _user_site(self.home)
        site.mkdir(parents=True)
        flag = str(self.flags / "usercustomize")
        (site / "usercustomize.py").write_text(PLANTED_USERCUSTOMIZE.format(flag=flag))
        (site / "zz-planted.pth").write_text(PLANTED_PTH)
        (self.home / ".keras").mkdir()
        (self.home / ".keras" / "keras.json").write_text('{"planted": "by the operator"}\n')

    def operator_env(self) -> dict[str, str]:
        path = f"{self.bin}:{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        # The runtime under test needs the PYTHONPATH it runs with; the program gets none.
        python_path = [*os.environ.get("PYTHONPATH", "").split(":"), "/operator/pythonpath"]
        return {
            **OPERATOR_ENV,
            "PATH": path,
            "HOME": str(self.home),
            "PYTHONPATH": ":".join(p for p in python_path if p),
        }

    def ran(self) -> list[str]:
        return sorted(p.name for p in self.flags.iterdir())

    def reset(self) -> None:
        shutil.rmtree(self.flags)
        self.flags.mkdir()


@pytest.fixture
def probe_job(new_job: NewJob) -> Iterator[tuple[Job, Plants]]:
    args = fast_job_args()
    job = new_job(
        **{**args, "app_files": {"probe.py": PROBE}, "services": {"probe": []}},
        environment={"API_TOKEN": "token-the-policy-names"},
        apply=False,
    )
    plants = Plants(job)
    job.run_environment = plants.operator_env()
    yield job, plants
    _remove_probe_writes(job, plants.name)  # where a failed run (or control) left them


def _policy_env(job: Job) -> dict[str, str]:
    """The variables the job's policy gives the program."""
    return {
        "DATA_DIR": str(job.data_mount),
        "MODEL_DIR": str(job.model_mount),
        **job.environment,
    }


def _plain(job: Job, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The probe run without securetf, in the app's directory."""
    return subprocess.run(
        command, cwd=job.app, env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_planted_interpreter_never_runs(probe_job: tuple[Job, Plants]) -> None:
    job, plants = probe_job
    name = plants.name
    command = ["python", "probe.py", name]
    # Positive control: outside securetf, the operator's PATH finds the planted python.
    plain = _plain(job, command, {**plants.operator_env(), **_policy_env(job)})
    try:
        assert plain.returncode == 0, plain.stderr
        assert "PLANTED-INTERPRETER-RAN" in plain.stdout
        assert plants.ran() == ["interpreter"]
    finally:
        _remove_probe_writes(job, name)
    plants.reset()
    # Under securetf: command[0] is looked up on the program's own PATH, in its own view.
    job.services = {"probe": command}
    job.apply()
    proc = job.run("probe")
    assert proc.returncode == 0, proc.stderr
    for marker in MARKERS:
        assert marker not in proc.stdout + proc.stderr
    assert plants.ran() == []
    assert str(plants.bin) not in _env(proc)["PATH"]


def test_user_site_and_keras_config_in_operator_home_never_reach_the_program(
    probe_job: tuple[Job, Plants],
) -> None:
    job, plants = probe_job
    name = plants.name
    # An interpreter outside a virtual environment (a venv ignores the user site anyway).
    command = [str(BASE_PYTHON), "probe.py", name]
    # Positive control: outside securetf, the operator's HOME runs its user site and hands
    # the program its Keras configuration.
    plain = _plain(job, command, {**plants.operator_env(), **_policy_env(job)})
    try:
        assert plain.returncode == 0, plain.stderr
        assert "PLANTED-USERCUSTOMIZE-RAN token-the-policy-names" in plain.stdout
        assert "PLANTED-PTH-RAN" in plain.stdout
        assert plants.ran() == ["usercustomize"]
        assert _probe(plain.stdout)["keras_json"] == '{"planted": "by the operator"}\n'
    finally:
        _remove_probe_writes(job, name)
    plants.reset()
    job.services = {"probe": command}
    job.apply()
    proc = job.run("probe")
    assert proc.returncode == 0, proc.stderr
    for marker in MARKERS:
        assert marker not in proc.stdout + proc.stderr
    assert plants.ran() == []
    found = _probe(proc.stdout)
    assert found["usercustomize"] is False
    assert found["keras_json"] == "ENOENT"  # its HOME is its own, in memory, empty


def _env(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    env = _probe(proc.stdout)["env"]
    assert isinstance(env, dict)
    return env


def test_no_variable_of_the_operator_reaches_the_program(probe_job: tuple[Job, Plants]) -> None:
    job, plants = probe_job
    name = plants.name
    job.services = {"probe": ["python", "probe.py", name]}
    job.apply()
    proc = job.run("probe")
    assert proc.returncode == 0, proc.stderr
    env = _env(proc)
    leaked = {k: v for k, v in OPERATOR_ENV.items() if env.get(k) == v}
    assert leaked == {}
    assert "PYTHONPATH" not in env
    assert str(plants.bin) not in env["PATH"]
    assert env["HOME"] != str(plants.home)
    assert env["PYTHONNOUSERSITE"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # its code's places are read-only
    # What the policy names does reach it.
    assert env["API_TOKEN"] == "token-the-policy-names"
    assert env["DATA_DIR"] == str(job.data_mount)


def _remove_probe_writes(job: Job, name: str) -> None:
    for path in _host_paths(job, name):
        path.unlink(missing_ok=True)


def _host_paths(job: Job, name: str) -> list[Path]:
    """Every place on the host a write of the probe could have reached."""
    operator_home = job.root / "operator-home"
    dirs = [Path(d) for d in ("/tmp", "/var/tmp", "/root", "/etc", "/tmp/.keras", "/")]
    dirs += [job.root, job.app, operator_home, operator_home / ".keras", Path("/root/.keras")]
    return [d / name for d in dirs]


def test_writes_outside_volumes_never_reach_the_host(probe_job: tuple[Job, Plants]) -> None:
    job, plants = probe_job
    name = plants.name
    # The program also tries the host's own path of its app's parent directory.
    job.environment["HOST_DIRS"] = str(job.root)
    # Positive control: the same program outside securetf leaves every one of its files.
    env = {**_policy_env(job), "PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(plants.home)}
    plain = _plain(job, [str(VENV_BIN / "python"), "probe.py", name], env)
    try:
        assert plain.returncode == 0, plain.stderr
        written = _probe(plain.stdout)["writes"]
        assert isinstance(written, dict)
        assert set(written.values()) == {"written"}, written
        for path in written:
            assert Path(path).exists(), f"the control's write to {path} is not visible"
    finally:
        _remove_probe_writes(job, name)
    job.services = {"probe": ["python", "probe.py", name]}
    job.apply()
    proc = job.run("probe")
    try:
        assert proc.returncode == 0, proc.stderr
        left = [str(p) for p in _host_paths(job, name) if p.exists()]
        assert left == [], "the program's writes reached the host"
        writes = _probe(proc.stdout)["writes"]
        assert isinstance(writes, dict)
        # Memory takes the scratch space and the caches; everything else is read-only.
        for path in ("/tmp", "/var/tmp", "/root", "/root/.keras", "/tmp/.keras"):
            assert writes[f"{path}/{name}"] == "written", writes
        assert writes[f"/etc/{name}"] == "EROFS", writes
        assert writes[f"/{name}"] == "EROFS", writes  # the app's parent directory
        # The volumes' mount points lie below it, in directories the runtime made (root's).
        assert writes[f"{job.root}/{name}"] in ("ENOENT", "EACCES", "written"), writes
    finally:
        _remove_probe_writes(job, name)

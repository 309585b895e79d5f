"""The program's view: exactly what docs/runtime.md lists, sized and set by the policy.

Its root holds the system's directories and securetf's Python environment (read-only),
a minimal /etc of the runtime's own, a few device nodes, its app, its volumes and its
memory; /proc shows its own processes only, and nothing it leaves running survives it.
A failed write names its path, and the runtime says where writes are allowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from securetf.runtime._rootfs import DEV_LINKS, DEV_NODES
from securetf.runtime._view import ETC_DIRS, ETC_FILES, system_view

from .support import Job, fast_job_args, markers

NewJob = Callable[..., Job]

VIEW = r"""
import errno, json, os

def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return errno.errorcode[exc.errno]

def fill(path, size):
    with open(path, "wb") as f:
        f.write(b"x" * size)

out = {
    "root": sorted(os.listdir("/")),
    "etc": sorted(os.listdir("/etc")),
    "dev": sorted(os.listdir("/dev")),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "pid": os.getpid(),
    "home": os.path.expanduser("~"),
    "cwd": os.getcwd(),
    "passwd": open("/etc/passwd").read(),
    "sysctl": attempt(lambda: open("/proc/sys/kernel/domainname", "w").write("x")),
    "usr": attempt(lambda: fill("/usr/x", 1)),
    "app": attempt(lambda: fill("/app/x", 1)),
    "tmp_2m": attempt(lambda: fill("/tmp/big", 2 << 20)),
    "shm_2m": attempt(lambda: fill("/dev/shm/big", 2 << 20)),
    "home_2m": attempt(lambda: fill(os.path.expanduser("~/big"), 2 << 20)),
    "fuse": os.path.exists("/dev/fuse"),
}
print("@marker view " + json.dumps(out), flush=True)
"""


def _one(job: Job, service: str, name: str) -> dict[str, Any]:
    proc = job.run(service)
    assert proc.returncode == 0, proc.stderr
    found = markers(proc.stdout)[name]
    assert isinstance(found, dict)
    return found


def test_the_program_sees_only_its_view(new_job: NewJob) -> None:
    job = new_job(
        **{**fast_job_args(), "app_files": {"view.py": VIEW}, "services": {"view": []}},
        tmpfs='{tmp: "1m", shm: "1m"}',
        apply=False,
    )
    job.services = {"view": ["python", "view.py"]}
    job.apply()
    found = _one(job, "view", "view")
    # The root: the system and Python's directories, /etc, /dev, the kernel's, the app,
    # memory and where volumes and secret files go; nothing else of the host.
    view = system_view()
    tops = {Path(d).parts[1] for d in view.binds} | {link.strip("/") for link in view.links}
    tops |= {"app", "dev", "etc", "proc", "sys", "tmp", "var", "root", "run"}
    assert set(found["root"]) <= tops, found["root"]
    for host_only in ("home", "opt", "srv", "mnt", "boot", "media"):
        assert host_only not in found["root"]
    # /etc: the runtime's own accounts, name service and hosts, and what linking needs.
    allowed = {"passwd", "group", "nsswitch.conf", "hosts"}
    allowed |= {f.split("/")[0] for f in ETC_FILES} | {d.split("/")[0] for d in ETC_DIRS}
    assert set(found["etc"]) <= allowed, found["etc"]
    assert found["passwd"].startswith("root:x:0:0:root:/nonexistent:")
    assert "\napp:x:65532:65532:app:/root:" in found["passwd"]
    # /dev: the basic nodes and memory; no disks, no /dev/fuse.
    assert set(found["dev"]) == {*DEV_NODES, *DEV_LINKS, "shm"}, found["dev"]
    assert found["fuse"] is False
    # Its own PID namespace: its init (1), itself, nothing of the host.
    assert found["pids"] == [1, found["pid"]], found["pids"]
    assert found["home"] == "/root"
    assert found["cwd"] == "/app"
    # Read-only: the system, the app, the kernel's settings.
    assert found["usr"] == "EROFS"
    assert found["app"] == "EROFS"
    assert found["sysctl"] == "EROFS"
    # Memory, with the policy's sizes (1m) and the default (256m for HOME).
    assert found["tmp_2m"] == "ENOSPC"
    assert found["shm_2m"] == "ENOSPC"
    assert found["home_2m"] == "done"


TOOL = '#!/bin/sh\necho "@marker tool \\"$0|$1|$PATH\\""\n'


def test_the_policy_s_path_finds_command_0_in_the_view(new_job: NewJob) -> None:
    job = new_job(
        **{**fast_job_args(), "app_files": {}, "services": {"tool": []}},
        path="/app/bin:/usr/bin:/bin",
        apply=False,
    )
    (job.app / "bin").mkdir()
    (job.app / "bin" / "tool").write_text(TOOL)
    (job.app / "bin" / "tool").chmod(0o755)
    job.services = {"tool": ["tool", "first"]}
    job.apply()
    proc = job.run("tool")
    assert proc.returncode == 0, proc.stderr
    assert markers(proc.stdout)["tool"] == "/app/bin/tool|first|/app/bin:/usr/bin:/bin"


def test_a_failed_write_is_explained(new_job: NewJob) -> None:
    program = "open('/etc/settings.json', 'w').write('{}')\n"
    job = new_job(
        **{**fast_job_args(), "app_files": {"fail.py": program}, "services": {"fail": []}},
        apply=False,
    )
    job.services = {"fail": ["python", "fail.py"]}
    job.apply()
    proc = job.run("fail")
    assert proc.returncode == 1
    # The program's own error names the path; the runtime says where writes may go.
    assert "Read-only file system: '/etc/settings.json'" in proc.stderr
    assert "the program exited with code 1" in proc.stderr
    assert "only memory (/dev/shm, /root, /tmp, /var/tmp)" in proc.stderr
    assert f"read-write volumes ({job.model_mount})" in proc.stderr


SIGNALS = r"""
import json, os, signal, subprocess, sys, time

subprocess.Popen(["sleep", sys.argv[1]])  # left running on purpose

def stop(sig, _frame):
    # os.write, not print: the signal may arrive while print("ready") has not returned yet.
    os.write(1, ("@marker stopped " + json.dumps(sig) + "\n").encode())
    os._exit(3)

signal.signal(signal.SIGTERM, stop)
print("@marker ready 1", flush=True)
time.sleep(60)
"""


def _sleeping(argument: str) -> list[int]:
    """The host's ``sleep`` processes with this argument."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(b"sleep") and argument.encode() in cmdline:
            found.append(int(pid))
    return found


def _running(argument: str) -> list[bytes]:
    """The host's processes whose command line holds this argument (the program, what it
    started, a tracer of it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in cmdline:
            found.append(cmdline[0])
    return found


@pytest.mark.parametrize("extra", [[], ["--trace-writes"]], ids=["plain", "traced"])
def test_signals_reach_the_program_and_nothing_it_started_survives(
    new_job: NewJob, extra: list[str]
) -> None:
    """Traced too: the init's child is the program (strace traces it from a grandchild),
    and the tracer goes with the program's namespace."""
    job = new_job(
        **{**fast_job_args(), "app_files": {"signals.py": SIGNALS}, "services": {"sig": []}},
        apply=False,
    )
    unique = f"{1000 + int.from_bytes(os.urandom(2), 'big')}.5"
    job.services = {"sig": ["python", "signals.py", unique]}
    job.apply()
    run = subprocess.Popen(
        [*job.run_args("sig"), *extra],
        env=job.run_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while "ready" not in markers(run.stdout.readline()):
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "the program never got ready"
        # The program's sleep, seen from the host (a traced start may lag behind "ready").
        while not _sleeping(unique) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_sleeping(unique)) == 1
        tracers = [c for c in _running(unique) if c.endswith(b"strace")]
        assert len(tracers) == (1 if extra else 0)  # the control for the check below
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 3, err
    assert markers(out)["stopped"] == signal.SIGTERM
    # The program's namespace went with it, and everything it left running.
    assert _sleeping(unique) == []
    assert _running(unique) == []
    job.assert_nothing_left()

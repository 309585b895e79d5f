"""``securetf run --trace-writes``: the runtime names where the program's writes were
refused, shows nothing of the program's private names, and gives the program no power.

Without the flag, the note after a failure says to use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .support import Job, dataset_csv, markers

NewJob = Callable[..., Job]

PROGRAM = r"""
import ctypes, errno, json, os, signal, sys

def mark(name, value=""):
    print(f"@marker {name} {json.dumps(value)}", flush=True)

def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return errno.errorcode[exc.errno]

def write(path):
    with open(path, "w") as f:
        f.write("x")

mark("started", os.getcwd())
mode = sys.argv[1]
if mode == "fail":
    for path in ("/etc/x", "/app/y", "/usr/z", "relative-y", "/nowhere/at/all",
                 os.path.join(os.environ["DATA_DIR"], "private-name-of-the-data.csv"),
                 "/etc/x"):
        mark("write", [path, attempt(lambda: write(path))])
    sys.exit(1)
elif mode == "ok":
    write(os.path.join(os.environ["MODEL_DIR"], "out.txt"))
    os.makedirs("/tmp/a/b", exist_ok=True)
    os.makedirs("/tmp/a/b", exist_ok=True)  # EEXIST: the program's business, no refusal
    print("ok under trace", flush=True)
elif mode == "probe":
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    def status(pid):
        with open(f"/proc/{pid}/status") as f:
            return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    me = status("self")
    others = {}
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid == os.getpid():
            continue
        st = status(pid)
        traced = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
        others[pid] = {
            "uid": st["Uid"].split()[0],
            "cap_eff": st["CapEff"].strip(),
            "cap_bnd": st["CapBnd"].strip(),
            "ptrace": errno.errorcode.get(ctypes.get_errno(), "done") if traced else "done",
            "fds": attempt(lambda: os.listdir(f"/proc/{pid}/fd")),
            "mem": attempt(lambda: open(f"/proc/{pid}/mem", "rb").read(1)),
            "kill": attempt(lambda: os.kill(pid, signal.SIGKILL)),
        }
    mark("probe", {
        "uid": os.getuid(),
        "cap_eff": me["CapEff"].strip(),
        "traced": me["TracerPid"].strip() != "0",
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "others": others,
    })
"""

SERVICES = {mode: ["python", "prog.py", mode] for mode in ("fail", "ok", "probe")}
#: CAP_KILL alone: the init forwards signals to the program.
INIT_CAPABILITIES = "0000000000000020"
#: CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP and CAP_SYS_PTRACE: the tracer's.
TRACER_CAPABILITIES = "00000000000801e0"


@pytest.fixture
def job(new_job: NewJob) -> Job:
    return new_job(
        app_files={"prog.py": PROGRAM},
        services=SERVICES,
        dataset={"table.csv": dataset_csv("data-marker-trace")},
    )


def test_traced_failure_names_each_refused_write(job: Job) -> None:
    proc = job.run("fail", extra=["--trace-writes"])
    assert proc.returncode == 1, proc.stderr
    writes = _writes(proc.stdout)
    # Positive control: the program's writes did fail, as the report will say.
    assert writes["/etc/x"] == writes["/app/y"] == writes["/usr/z"] == "EROFS"
    assert writes["relative-y"] == "EROFS"
    assert writes["/nowhere/at/all"] == "ENOENT"
    err = proc.stderr
    assert "writes refused: " in err
    for refused in (
        "/etc/x (EROFS)",
        "/app/y (EROFS)",
        "/usr/z (EROFS)",
        "/app/relative-y (EROFS)",  # resolved from the working directory
        "/nowhere/at/all (ENOENT)",
        f"{job.data_mount}/... (EROFS)",  # the read-only volume, named only as a place
    ):
        assert refused in err, err
    assert err.count("/etc/x (EROFS)") == 1  # deduplicated
    assert "private-name-of-the-data" not in err
    assert "--trace-writes to have the runtime name" not in err


def test_untraced_failure_suggests_the_trace(job: Job) -> None:
    proc = job.run("fail")
    assert proc.returncode == 1, proc.stderr
    assert "Run again with --trace-writes" in proc.stderr
    assert "writes refused" not in proc.stderr


def test_a_traced_program_that_succeeds_works_as_ever(job: Job) -> None:
    proc = job.run("ok", extra=["--trace-writes"])
    assert proc.returncode == 0, proc.stderr
    assert "ok under trace" in proc.stdout
    assert "Traced: no write was refused" in proc.stderr
    assert job.sealed_model.exists()  # committed, as after any successful run


def test_tracing_gives_the_program_no_power(job: Job) -> None:
    proc = job.run("probe", extra=["--trace-writes"])
    assert proc.returncode == 0, proc.stderr
    found = markers(proc.stdout)["probe"]
    assert isinstance(found, dict)
    assert found["traced"] is True  # positive control: strace does trace it
    assert found["uid"] == 65532
    assert found["cap_eff"] == "0000000000000000"
    # Only its standard streams (and the directory it lists): not strace's pipe.
    assert len(found["fds"]) == 4, found["fds"]
    others = found["others"]
    assert isinstance(others, dict)
    init, tracers = others.pop("1"), list(others.values())
    assert len(tracers) == 1, others  # strace, root beside the program
    for process in (init, *tracers):
        assert process["uid"] == "0"
        # Neither traced, read, opened nor signalled by the program.
        assert process["ptrace"] == "EPERM", process
        assert process["fds"] == "EACCES", process
        assert process["mem"] == "EACCES", process
        assert process["kill"] == "EPERM", process
    # What they hold reaches nothing outside the program's namespaces.
    assert init["cap_eff"] == INIT_CAPABILITIES
    assert tracers[0]["cap_eff"] == tracers[0]["cap_bnd"] == TRACER_CAPABILITIES


def _writes(stdout: str) -> dict[str, str]:
    """What each write of the program met: its ``@marker write [PATH, RESULT]`` lines."""
    prefix = "@marker write "
    found = [
        json.loads(line[len(prefix) :]) for line in stdout.splitlines() if line.startswith(prefix)
    ]
    return {str(path): str(result) for path, result in found}

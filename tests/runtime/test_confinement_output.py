"""What the program prints goes where the policy's ``output`` says, and nowhere else.

The operator reads ``securetf run``'s standard output and error, and everything on the
host's disk. With ``output: none`` nothing the program prints reaches it; with ``{sealed:
VOLUME/PATH}`` both streams are appended, in order, to a file of the program's read-write
volume, sealed: their text is in no file of the host and on no stream of the runtime, and
only the volume's key (an owner's) unseals it. Each property has its positive control:
with the default ``operator`` the same program's text reaches both of the runtime's
streams, so the tests would see a leak if there were one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from .support import Deployment, Job, dataset_csv, find_plaintext_on_host, make_job

#: ``talk.py LABEL EXIT``: four lines, alternating stdout and stderr; a report of what its
#: stdout and stderr are; a file in its read-write volume; then exit code EXIT.
TALK = r"""
import hashlib, os, stat, sys

label, code = sys.argv[1], int(sys.argv[2])
# Derived here, so that the text is in no file of the host unless the program's output is.
marker = "output-marker-" + hashlib.sha256(b"securetf output " + label.encode()).hexdigest()
for n, stream in enumerate((sys.stdout, sys.stderr, sys.stdout, sys.stderr), 1):
    print(f"{marker} {n}", file=stream, flush=True)

def kind(fd):
    st = os.fstat(fd)
    if stat.S_ISFIFO(st.st_mode):
        return "pipe"
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat("/dev/null").st_rdev:
        return "null"
    return "other"

same = os.fstat(1).st_ino == os.fstat(2).st_ino
links = [os.readlink(f"/proc/self/fd/{fd}").split(":")[0] for fd in (1, 2)]
print(f"fds {kind(1)} {kind(2)} same={same} links={links}", flush=True)
if label == "quiet" and (kind(1), kind(2)) != ("null", "null"):
    sys.exit(9)
with open(os.path.join(os.environ["MODEL_DIR"], f"{label}-was-here.txt"), "w") as f:
    f.write(label)
sys.exit(code)
"""

SERVICES = {
    "loud": ["python", "talk.py", "loud", "0"],
    "quiet": ["python", "talk.py", "quiet", "0"],
    "log-fail": ["python", "talk.py", "fail", "3"],
    "log-ok": ["python", "talk.py", "ok", "0"],
}
LOG = "model/logs/run.log"
OUTPUT = {"quiet": "none", "log-fail": f"{{sealed: {LOG}}}", "log-ok": f"{{sealed: {LOG}}}"}


def marker(label: str) -> str:
    return "output-marker-" + hashlib.sha256(b"securetf output " + label.encode()).hexdigest()


def lines(label: str) -> list[str]:
    """What ``talk.py LABEL`` prints, in order (stdout and stderr alike)."""
    return [f"{marker(label)} {n}" for n in range(1, 5)]


@pytest.fixture(scope="module")
def job(deployment: Deployment) -> Iterator[Job]:
    """One policy with a service for each form of ``output``."""
    dataset = {"table.csv": dataset_csv("data-marker-output")}
    made = make_job(
        deployment, app_files={"talk.py": TALK}, services=SERVICES, dataset=dataset, output=OUTPUT
    )
    yield made
    shutil.rmtree(made.root, ignore_errors=True)


def _streams(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def test_operator_gets_everything_the_program_prints(job: Job) -> None:
    """The default, and the positive control of the tests below."""
    proc = job.run("loud")
    assert proc.returncode == 0, proc.stderr
    first, second, third, fourth = lines("loud")
    assert proc.stdout.index(first) < proc.stdout.index(third)
    assert proc.stderr.index(second) < proc.stderr.index(fourth)
    assert "fds pipe pipe same=False" in proc.stdout  # the runtime's own two pipes, here


def test_none_discards_everything_the_program_prints(job: Job) -> None:
    proc = job.run("quiet")
    assert proc.returncode == 0, proc.stderr  # 9: its stdout or stderr was not /dev/null
    assert marker("quiet") not in _streams(proc)
    assert "fds " not in _streams(proc)
    assert proc.stdout == ""


def test_sealed_output_is_appended_in_the_volume_and_never_on_the_host(job: Job) -> None:
    since = time.time()
    # A failing run first: its output is committed alone, into the new volume, and its tag
    # recorded at the CAS (the next run opens the volume only in that state).
    failed = job.run("log-fail")
    assert failed.returncode == 3, failed.stderr
    assert "the program exited with code 3" in failed.stderr
    ok = job.run("log-ok")
    assert ok.returncode == 0, ok.stderr
    for proc in (failed, ok):
        assert marker("fail") not in _streams(proc)
        assert marker("ok") not in _streams(proc)
        assert "fds " not in _streams(proc)
    needles = [marker("fail").encode(), marker("ok").encode()]
    assert find_plaintext_on_host([job.root], needles, since) == []
    # The owner unseals the volume: both runs' output, each in the order it was written.
    unsealed = job.root / "unsealed"
    job.dep.cli("volume", "unseal", job.sealed_model, unsealed, "--key-file", job.model_key())
    try:
        log = (unsealed / "logs" / "run.log").read_text().splitlines()
        report = "fds pipe pipe same=True links=['pipe', 'pipe']"
        assert log == [*lines("fail"), report, *lines("ok"), report]
        # The failed run's other writes were dropped; the successful run's were committed.
        assert not (unsealed / "fail-was-here.txt").exists()
        assert (unsealed / "ok-was-here.txt").read_text() == "ok"
    finally:
        shutil.rmtree(unsealed)

"""An environment image kept mounted by ``securetf env serve``, used by ``securetf run``.

The kept mount still checks each chunk when first read (a byte the storage admin changes
in place fails the program's read with EIO); a run uses it only when it is root's own,
ready, served by a live process and mounted where the run can see it, else the run mounts
the image itself; and stopping the server waits for the programs that use it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from securetf.shield.fs._shared_image import STATE
from securetf.shield.fs._unmount import is_mounted
from tests.cas.server_support import EXE
from tests.envsupport import PROBE, Packed

from .support import Job, dataset_csv, markers

NewJob = Callable[..., Job]

#: Where the program's interpreter comes from: the source of the mount holding sys.prefix.
PROGRAM = f"""
import json, os, sys, time
print("@marker waiting {{}}", flush=True)
time.sleep(float(sys.argv[1]))
import {PROBE}
best, source = "", ""
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    point, src = fields[4], fields[fields.index("-") + 2]
    if sys.prefix.startswith(point) and len(point) > len(best):
        best, source = point, src
print("@marker started", json.dumps({{"source": source}}), flush=True)
"""


def _job(new_job: NewJob, image: Path, pause: float = 0.0) -> Job:
    return new_job(
        app_files={"prog.py": PROGRAM},
        services={"env": ["python", "prog.py", str(pause)]},
        dataset={"table.csv": dataset_csv("env-kept")},
        env_image=image,
    )


@contextmanager
def _served(image: Path) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [*EXE, "env", "serve", str(image)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("sha256:"), server.communicate(timeout=30)[1]
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


def _kept_dir(packed: Packed) -> Path:
    return STATE / packed.digest.hex()


def test_runs_use_the_kept_mount_which_outlives_them(new_job: NewJob, packed_env: Packed) -> None:
    job = _job(new_job, packed_env.image)
    with _served(packed_env.image) as server:
        where = _kept_dir(packed_env)
        for _ in range(2):
            proc = job.run("env")
            assert proc.returncode == 0, proc.stderr
            seen = markers(proc.stdout)["started"]
            assert isinstance(seen, dict)
            assert seen["source"] == f"{where}/verified/image"
            assert is_mounted(where / "root")  # still there for the next run
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert not where.exists()
    # Without a server, the run mounts the image itself again.
    proc = job.run("env")
    assert proc.returncode == 0, proc.stderr
    seen = markers(proc.stdout)["started"]
    assert isinstance(seen, dict)
    assert not str(seen["source"]).startswith(str(STATE))


def test_a_byte_changed_under_a_kept_mount_fails_the_read(
    new_job: NewJob, packed_env: Packed, tmp_path: Path
) -> None:
    image = tmp_path / "served.img"
    shutil.copyfile(packed_env.image, image)
    job = _job(new_job, image)
    with _served(image) as server:
        # The storage admin changes the probe's bytes in the file the server reads.
        data = image.read_bytes()
        at = data.index(b"probe-from-image")
        with open(image, "r+b") as f:
            f.seek(at)
            f.write(b"P")
        proc = job.run("env")
    assert proc.returncode != 0
    assert not job.started()
    # The program met EIO (which Python's import may report as a missing module); the
    # server names the chunk that failed its check.
    assert server.stderr is not None
    logged = server.stderr.read()
    assert f"of the environment image {image} was changed" in logged, logged


def test_stopping_waits_for_the_running_program(new_job: NewJob, packed_env: Packed) -> None:
    job = _job(new_job, packed_env.image, pause=4.0)
    with _served(packed_env.image) as server:
        run = subprocess.Popen(
            job.run_args("env"),
            env=job.run_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Told to stop while the program sleeps, before it imports from the image.
        assert run.stdout is not None
        first = run.stdout.readline()
        assert first.startswith("@marker waiting"), first + run.communicate(timeout=120)[1]
        server.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        seen = markers(out)["started"]
        assert isinstance(seen, dict)
        assert seen["source"] == f"{_kept_dir(packed_env)}/verified/image"
        assert server.wait(timeout=60) == 0
    assert not _kept_dir(packed_env).exists()


def test_a_kept_mount_that_is_not_usable_is_not_used(new_job: NewJob, packed_env: Packed) -> None:
    """A directory that claims the image but is no live server's mount: the run mounts the
    image itself (and the program still runs on the pinned image)."""
    where = _kept_dir(packed_env)
    where.mkdir(parents=True, mode=0o700)
    try:
        (where / "root").mkdir()
        (where / "verified").mkdir()
        (where / "lease").write_bytes(b"")
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        ready = {"digest": packed_env.digest.hex(), "pid": int(dead.stdout)}
        (where / "ready").write_text(json.dumps(ready))
        job = _job(new_job, packed_env.image)
        proc = job.run("env")
        assert proc.returncode == 0, proc.stderr
        seen = markers(proc.stdout)["started"]
        assert isinstance(seen, dict)
        assert not str(seen["source"]).startswith(str(STATE))
        # Nor does a live process's claim count without the mounts.
        ready["pid"] = os.getpid()
        (where / "ready").write_text(json.dumps(ready))
        proc = job.run("env")
        assert proc.returncode == 0, proc.stderr
        seen = markers(proc.stdout)["started"]
        assert isinstance(seen, dict)
        assert not str(seen["source"]).startswith(str(STATE))
    finally:
        shutil.rmtree(where)


def test_a_kept_mount_open_to_others_is_not_used(new_job: NewJob, packed_env: Packed) -> None:
    """A live server's mount whose directory others may enter or change (mode not 0700)
    is not trusted: the run mounts the image itself."""
    job = _job(new_job, packed_env.image)
    with _served(packed_env.image):
        where = _kept_dir(packed_env)
        os.chmod(where, 0o755)
        try:
            proc = job.run("env")
        finally:
            os.chmod(where, 0o700)
    assert proc.returncode == 0, proc.stderr
    seen = markers(proc.stdout)["started"]
    assert isinstance(seen, dict)
    assert not str(seen["source"]).startswith(str(STATE))


def test_serving_an_image_twice_is_refused(packed_env: Packed) -> None:
    with _served(packed_env.image):
        again = subprocess.run(
            [*EXE, "env", "serve", str(packed_env.image)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert again.returncode == 2
    assert "is already served here" in again.stderr


def test_a_server_that_died_is_taken_over(new_job: NewJob, packed_env: Packed) -> None:
    """Killed (or its machine's power cut), a server leaves its mounts: the next one
    unmounts them and serves; runs never use the dead one's."""
    where = _kept_dir(packed_env)
    with _served(packed_env.image) as first:
        first.kill()
        first.wait(timeout=30)
        assert (where / "ready").exists()
        job = _job(new_job, packed_env.image)
        proc = job.run("env")
        assert proc.returncode == 0, proc.stderr
        seen = markers(proc.stdout)["started"]
        assert isinstance(seen, dict)
        assert not str(seen["source"]).startswith(str(STATE))
        with _served(packed_env.image) as second:
            assert second.poll() is None
            proc = job.run("env")
            assert proc.returncode == 0, proc.stderr
            seen = markers(proc.stdout)["started"]
            assert isinstance(seen, dict)
            assert seen["source"] == f"{where}/verified/image"
    assert not where.exists()

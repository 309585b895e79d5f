"""What the shield guarantees a program run by ``securetf run``: no tampered byte reaches
it, a killed program leaves the model volume as it was, no plaintext reaches the host's
disk, and the host never sees the mounts (nothing stays mounted afterwards)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from securetf.crypto import TAG_SIZE
from securetf.volume import Volume, VolumeKey

from .support import (
    Job,
    fast_job_args,
    find_plaintext,
    find_plaintext_on_host,
    markers,
    mount_points,
)

NewJob = Callable[..., Job]
CHUNK = 64 * 1024  # the volumes' default chunk size
BIG = 8 * 1024 * 1024
BAD = 80  # the tampered chunk: 5 MiB into the file
MODEL_MARKER = "model-marker-" + hashlib.sha256(b"securetf runtime tests").hexdigest()


def _object_of(sealed: Path, key: Path, path: str) -> Path:
    with Volume.open(sealed, VolumeKey.from_file(key)) as vol:
        return vol._store.object_path(vol._files[path].object_id)


def test_tampered_chunk_never_reaches_the_program(new_job: NewJob) -> None:
    big = os.urandom(BIG)
    job = new_job(**fast_job_args(extra={"big.bin": big}))
    obj = _object_of(job.sealed_data, job.dataset_key, "big.bin")
    with open(obj, "r+b") as f:
        f.seek(BAD * (CHUNK + TAG_SIZE) + CHUNK // 2)  # a byte in the middle of the chunk
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    proc = job.run("read-big")
    assert proc.returncode != 0
    assert "OSError: [Errno 5] Input/output error" in proc.stderr
    report = markers(proc.stdout)["read"]
    assert isinstance(report, dict)
    assert report["errno"] == errno.EIO
    # Every byte before the tampered chunk may arrive; none of it (or after it) does.
    assert report["got"] <= BAD * CHUNK, "the program got bytes of the tampered chunk"
    # What it got before the failure is exactly the file's beginning.
    assert report["sha256"] == hashlib.sha256(big[: report["got"]]).hexdigest()
    # Nothing was written, so nothing was committed: the model volume was created empty
    # and never stored.
    assert not (job.sealed_model / "securetf-volume").exists()


def test_killed_writer_leaves_the_previous_state(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    first = job.run("ok")
    assert first.returncode == 0, first.stderr
    tag = job.model_tag()
    killed = job.run("kill")
    assert killed.returncode == 128 + 9, killed.stderr  # SIGKILL, passed through
    assert job.started()
    # Storage is at the state before the killed run, and every byte of it verifies.
    assert job.model_tag(expect=tag) == tag
    # The next run works, sees the earlier state, and commits a new one.
    again = job.run("ok")
    assert again.returncode == 0, again.stderr
    assert "ok run 2" in again.stdout
    assert job.model_tag() != tag
    out = job.root / "model-plain"
    job.dep.cli("volume", "unseal", job.sealed_model, out, "--key-file", job.model_key())
    assert sorted(p.name for p in out.iterdir()) == ["big.bin", "out.txt"]
    assert (out / "out.txt").read_text() == f"runs 2 {MODEL_MARKER}\n"


def test_no_plaintext_on_the_host(new_job: NewJob, cas_data: Path) -> None:
    data_marker = f"data-marker-{os.urandom(12).hex()}"
    job = new_job(**fast_job_args(data_marker))
    started = time.time()
    proc = job.run("ok")
    assert proc.returncode == 0, proc.stderr
    # The program did see both in plaintext (under the shield).
    out = job.root / "model-plain"
    job.dep.cli("volume", "unseal", job.sealed_model, out, "--key-file", job.model_key())
    needles = [data_marker.encode(), MODEL_MARKER.encode()]
    assert find_plaintext([out], needles) == [
        f"{out / n}: {MODEL_MARKER.encode()!r}" for n in ("big.bin", "out.txt")
    ]
    (out / "out.txt").unlink()
    (out / "big.bin").unlink()
    private = [job.root, cas_data, job.dep.cas.home]
    assert find_plaintext_on_host(private, needles, started) == []
    # The mount points are the program's alone: not even an empty directory on the host.
    assert not job.data_mount.exists()
    assert not job.model_mount.exists()


def test_host_never_sees_the_mounts(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    proc = subprocess.Popen(
        job.run_args("wait"),
        env=job.run_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        seen: dict[str, object] = {}
        deadline = time.monotonic() + 60
        while "ready" not in seen:
            line = proc.stdout.readline()
            assert line, f"the program did not start: {proc.communicate()}"
            assert time.monotonic() < deadline, "the program did not start"
            seen |= markers(line)
        # The program sees its volumes mounted, with the shield, in its own root (a tmpfs,
        # read-only), and its secrets in memory there...
        mounts = seen["mounts"]
        assert isinstance(mounts, str)
        inside = [line.split() for line in mounts.splitlines()]
        fuse = {m[1] for m in inside if m[2] == "fuse.securetf"}
        assert fuse == {str(job.data_mount), str(job.model_mount)}
        root = [m for m in inside if m[1] == "/"]
        assert root[-1][2] == "tmpfs", root
        assert "ro" in root[-1][3].split(","), root
        # ...while it runs, the host sees none of them.
        outside = mount_points()
        assert not [m for m in outside if m.startswith((str(job.root), "/run/securetf"))]
        assert not job.data_mount.exists()
        _, err = proc.communicate("go\n", timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job.assert_nothing_left()


def test_a_failed_first_run_leaves_nothing_that_blocks_the_next(new_job: NewJob) -> None:
    """A read-write volume the first run creates, and that run commits nothing to (the
    program died), is not left behind as an unregistered copy the next run must refuse:
    the next run starts it afresh."""
    job = new_job(**fast_job_args())
    assert not job.sealed_model.exists()
    killed = job.run("kill")
    assert killed.returncode == 128 + 9, killed.stderr
    assert not job.sealed_model.exists()
    again = job.run("ok")
    assert again.returncode == 0, again.stderr
    assert "ok run 1" in again.stdout

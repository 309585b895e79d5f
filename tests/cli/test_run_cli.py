"""What ``securetf run`` tells the operator: what it committed and where the CAS's tag
moved, which writable volume it left alone, and its steps as a spinner on a terminal only."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.cas.server_support import attested_cas
from tests.runtime.support import (
    PROGRAM,
    RUN_TIMEOUT_S,
    SERVICES,
    Deployment,
    Job,
    dataset_csv,
    make_job,
)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job]:
    base = tmp_path_factory.mktemp("run-cli")
    with attested_cas(base) as cas:
        public = cas.cli("owner", "keygen", base / "alice.key").stdout.strip()
        made = make_job(
            Deployment(cas, base / "alice.key", public),
            app_files={"prog.py": PROGRAM},
            services=SERVICES,
            dataset={"table.csv": dataset_csv("data-marker-run-cli"), "big.bin": b"x" * 4096},
        )
        try:
            yield made
        finally:
            subprocess.run(["rm", "-rf", str(made.root)], check=False)


def _run(job: Job, service: str) -> subprocess.CompletedProcess[str]:
    """``securetf run`` as an operator runs it (not Job.run: its check that nothing stays
    under /run/securetf counts other users' environment images on a shared machine)."""
    return subprocess.run(
        job.run_args(service),
        env=job.run_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_run_reports_each_commit_and_each_volume_left_alone(job: Job) -> None:
    first = _run(job, "ok")
    assert first.returncode == 0, first.stderr
    tag = job.model_tag()
    line = (
        f"securetf run: volume model committed: version 1 (was new), tag {tag}; "
        "the CAS's tag moved to it"
    )
    assert line in first.stderr
    assert "securetf run: measurement sha256:" in first.stderr
    assert "\x1b[" not in first.stderr  # no terminal: no spinner, no control characters
    second = _run(job, "ok")
    assert second.returncode == 0, second.stderr
    assert f"volume model committed: version 2 (was version 1), tag {job.model_tag()};" in (
        second.stderr
    )
    # A run that writes nothing to its read-write volume commits nothing, and says so.
    reader = _run(job, "read-big")
    assert reader.returncode == 0, reader.stderr
    assert "securetf run: volume model unchanged: nothing committed" in reader.stderr
    assert "committed:" not in reader.stderr


def _run_with_terminal_stderr(job: Job) -> tuple[int, str]:
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                block = os.read(leader, 65536)
            except OSError:  # the follower side closed
                return
            if not block:
                return
            chunks.append(block)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            job.run_args("ok"),
            env=job.run_env() | {"TERM": "xterm", "COLUMNS": "120"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        os.close(follower)
        reader.join(10)
        os.close(leader)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_run_shows_its_steps_on_a_terminal(job: Job) -> None:
    code, terminal = _run_with_terminal_stderr(job)
    assert code == 0, terminal
    for step in ("measuring the app", "attesting to the CAS (sim)", "mounting volumes"):
        assert f"securetf run: {step}" in terminal
    assert "unmounting and committing volumes" in terminal
    assert "volume model committed" in terminal

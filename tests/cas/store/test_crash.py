"""Persistence across kill -9: everything committed is intact, nothing half-written shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from securetf.cas.audit import verify_audit_chain
from securetf.cas.master_key import MasterKey
from securetf.cas.store import open_store
from securetf.crypto import SigningKey

REPO = Path(__file__).resolve().parents[3]
STEPS_BEFORE_KILL = 40
CHILD_TIMEOUT_S = 60


def run_writer_and_kill(db_url: str, data_dir: Path, key_file: Path) -> int:
    """Start the writer, SIGKILL it while it writes; the last step it reported committed."""
    cmd = [
        sys.executable,
        "-m",
        "tests.cas.store._crash_writer",
        db_url,
        str(data_dir),
        str(key_file),
    ]
    child = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    reported, deadline = 0, time.monotonic() + CHILD_TIMEOUT_S
    try:
        while reported < STEPS_BEFORE_KILL and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the writer stopped by itself: {child.communicate()[1]}")
            reported = int(line)
        # No pause: the writer is in the middle of its next transaction.
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert reported == STEPS_BEFORE_KILL
    return reported


@pytest.mark.slow
def test_committed_state_survives_kill_9(db_url: str, tmp_path: Path) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "audit.pem"
    audit_key = SigningKey.generate()
    key_file.write_bytes(audit_key.to_pem())
    reported = run_writer_and_kill(db_url, data_dir, key_file)

    store = open_store(db_url, master_key=MasterKey.load_or_create(data_dir), audit_key=audit_key)
    try:
        with store.transaction() as tx:
            history = tx.policy_history("p")
            n = len(history)
            assert n >= reported  # every reported commit, perhaps one more, never half of one
            assert [v.version for v in history] == list(range(1, n + 1))
            assert [tx.get_secret("p", f"s{i}") for i in range(1, n + 2)] == [
                b"value %d" % i for i in range(1, n + 1)
            ] + [None]
            tag = tx.get_tag("p", "vol")
            assert tag is not None
            assert (tag.tag, tag.version) == (f"t{n}", n)
            entries = tx.audit_entries()
        assert [e.detail["i"] for e in entries] == list(range(1, n + 1))
        verify_audit_chain(entries, audit_key.verify_key())
        # And the store goes on from there: the chain continues without a fork.
        with store.transaction() as tx:
            tx.append_audit("after", None, {}, 0.0)
            entries = tx.audit_entries()
        verify_audit_chain(entries, audit_key.verify_key())
    finally:
        store.close()

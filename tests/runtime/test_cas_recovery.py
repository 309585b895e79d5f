"""The CAS's machine is lost; a new data directory is made from a backup and k of the owners'
recovery shares (``securetf cas recover``), and the next ``securetf run`` gets the same
secrets and volume tags as before (docs/cas.md, "Backup and recovery")."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cas.server_support import CasProcess
from tests.ports import free_port

from .support import Deployment, Job, fast_job_args, make_job, markers

MAKE_JOB: Callable[..., Job] = make_job  # takes fast_job_args()


def recovery_owners(cas: CasProcess, base: Path, names: list[str], threshold: int) -> Path:
    """Recovery keys for ``names`` in ``base/<name>.rkey``; the CAS's --recovery-keys file."""
    owners = [
        {
            "name": n,
            "public_key": cas.cli("cas", "recovery-keygen", base / f"{n}.rkey").stdout.strip(),
        }
        for n in names
    ]
    path = base / "recovery-keys.json"
    path.write_text(json.dumps({"threshold": threshold, "owners": owners}))
    return path


@pytest.mark.slow
def test_a_lost_cas_recovered_from_a_backup_serves_the_same_secrets_and_tags(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cas = CasProcess(data=tmp_path / "cas", home=home, port=free_port())
    keys = recovery_owners(cas, tmp_path, ["alice", "bob", "carol"], threshold=2)
    cas.extra_args = ("--recovery-keys", str(keys))
    cas.start()
    job = None
    try:
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        public = cas.cli("owner", "keygen", tmp_path / "owner.key").stdout.strip()
        job = MAKE_JOB(Deployment(cas, tmp_path / "owner.key", public), **fast_job_args())
        first = job.run("ok")
        assert first.returncode == 0, first.stderr
        assert "ok run 1" in first.stdout
        model_key = job.model_key().read_bytes()
        tag = job.model_tag()
        backup = tmp_path / "cas.backup"
        cas.cli("cas", "backup", "--data-dir", cas.data, "--out", backup)  # while it runs

        # The machine is lost: the process and its whole data directory.
        cas.kill9()
        shutil.rmtree(cas.data)

        # Owners open their shares with their recovery keys; one is not enough.
        for name in ("alice", "carol"):
            cas.cli(
                "cas", "recovery-share", backup, "--key", tmp_path / f"{name}.rkey",
                "--out", tmp_path / f"{name}.share",
            )  # fmt: skip
        one = cas.cli(
            "cas", "recover", backup, "--data-dir", cas.data,
            "--share", tmp_path / "alice.share", ok=False,
        )  # fmt: skip
        assert one.returncode == 3
        assert "1 distinct owners' shares given, 2 of 3 needed: nothing recovered" in one.stderr
        assert not cas.data.exists()

        cas.cli(
            "cas", "recover", backup, "--data-dir", cas.data,
            "--share", tmp_path / "alice.share", "--share", tmp_path / "carol.share",
        )  # fmt: skip
        assert (cas.data / "master.sealed").exists()
        assert not (cas.data / "master.key").exists()
        cas.start()  # the new machine, at the address the clients pinned

        # The next run: the same dataset key and model key, and the model at the same tag.
        second = job.run("ok")
        assert second.returncode == 0, second.stderr
        assert "ok run 2" in second.stdout, markers(second.stdout)
        (job.root / "model.key").unlink()
        assert job.model_key().read_bytes() == model_key
        assert job.model_tag() != tag  # the run moved it on from the recovered tag
    finally:
        cas.stop()
        if job is not None:
            shutil.rmtree(job.root, ignore_errors=True)

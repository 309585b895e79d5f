"""Whatever is wrong before the program's start, the program never starts, the run ends
non-zero, and the message says why: a rolled-back or damaged volume, changed code, an
unknown service, a TEE the policy does not allow, missing privileges.

Each program first says ``started`` on its standard output, so "never started" is
checked, not assumed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

from securetf.errors import AttestationError, IntegrityError, UsageError

from .support import Job, fast_job_args

NewJob = Callable[..., Job]


def _refused(job: Job, proc: subprocess.CompletedProcess[str], exit_code: int) -> str:
    assert proc.returncode == exit_code, proc.stderr
    assert not job.started(), "the program started"
    return proc.stderr


def test_rolled_back_model_volume(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    assert job.run("ok").returncode == 0
    old = job.root / "model-copy"
    shutil.copytree(job.sealed_model, old)
    assert job.run("ok").returncode == 0  # committed: the CAS's tag moved on
    shutil.rmtree(job.sealed_model)
    shutil.copytree(old, job.sealed_model)  # the operator restores the older copy
    err = _refused(job, job.run("ok"), IntegrityError.exit_code)
    assert f"volume {job.sealed_model} is in state" in err
    assert "rolled back" in err


def test_older_copy_of_an_updated_read_only_dataset(new_job: NewJob) -> None:
    """Attack: the owner seals the dataset, keeps a copy and updates it (``volume put``);
    the operator runs the service with the older copy. A state no owner registered is
    refused as well, with the command that registers it."""
    job = new_job(**fast_job_args(), apply=False)
    job.apply(register=False)
    old = job.root / "data-copy"
    shutil.copytree(job.sealed_data, old)
    more = job.root / "more.csv"
    more.write_text("id,value\n1,2\n")
    job.dep.cli("volume", "put", job.sealed_data, more, "more.csv", "--key-file", job.dataset_key)
    err = _refused(job, job.run("ok"), IntegrityError.exit_code)
    assert "the CAS has no recorded state" in err
    register = f"securetf volume register {job.sealed_data} --policy {job.name} --volume dataset"
    assert register in err
    assert "version 2" in job.register_dataset().stdout
    shutil.rmtree(job.sealed_data)
    shutil.copytree(old, job.sealed_data)  # the operator restores the older copy
    err = _refused(job, job.run("ok"), IntegrityError.exit_code)
    assert "rolled back" in err
    assert register in err


def test_modified_app_code(new_job: NewJob) -> None:
    """The policy names another measurement than the app's: the error names the app's, as
    a policy writes it, and the commands that measure it and update the policy; never the
    measurements the policy allows."""
    job = new_job(**fast_job_args())
    allowed = job.policy_measurement("ok")
    with open(job.app / "prog.py", "a") as f:
        f.write("\nprint('a line added after the policy measured the app')\n")
    measured = job.policy_measurement("ok")
    assert measured != allowed
    err = _refused(job, job.run("ok"), AttestationError.exit_code)
    assert f"the app measurement {measured} is not one that service 'ok'" in err
    assert f"This run measured the app as {measured}" in err
    assert f"securetf measure --policy POLICY.yaml --service ok --app {job.app}" in err
    assert f"securetf policy apply POLICY.yaml --cas {job.dep.cas.url} --key OWNER.key" in err
    assert "services.ok.measurement" in err
    assert "If this is not the code meant to run here, do not change the policy" in err
    assert allowed not in err
    assert allowed.removeprefix("sha256:") not in err


def test_unknown_service(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    err = _refused(job, job.run("nope"), UsageError.exit_code)
    assert f"policy {job.name!r} has no service 'nope'" in err
    assert "services: kill, ok, read-big, wait" in err


def test_policy_not_allowing_sim(new_job: NewJob) -> None:
    job = new_job(**fast_job_args(), allow="sgx")
    err = _refused(job, job.run("ok"), AttestationError.exit_code)
    assert f"policy {job.name!r} does not allow TEE sim" in err


def test_damaged_manifest(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    manifest = job.sealed_data / "securetf-volume"
    raw = bytearray(manifest.read_bytes())
    raw[len(raw) // 2] ^= 1  # inside the encrypted body
    manifest.write_bytes(bytes(raw))
    err = _refused(job, job.run("ok"), IntegrityError.exit_code)
    # The manifest's digest is the volume's tag: no longer the one its owner registered.
    assert f"volume {job.sealed_data} is in state" in err
    assert "not the expected" in err


def test_without_root_fails_at_once_naming_the_privilege(new_job: NewJob) -> None:
    job = new_job(**fast_job_args())
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    start = time.monotonic()
    proc = job.run("ok", prefix=nobody)
    elapsed = time.monotonic() - start
    err = _refused(job, proc, UsageError.exit_code)
    assert "needs root (CAP_SYS_ADMIN)" in err
    assert elapsed < 15  # before any contact with the CAS: only the interpreter's start
    assert not job.sealed_model.exists()

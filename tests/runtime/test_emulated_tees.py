"""Provisioning on emulated SGX, TDX and SEV-SNP: the real runtime asks the real producer
interface (Gramine's /dev/attestation, configfs-tsm) of an emulated device, the real CAS
verifies the evidence with collateral from a local PCCS/KDS and the test roots, and the job
runs; and the CAS refuses what a policy does not accept."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from securetf.attestation import verify_evidence
from securetf.attestation.emulated import hardware
from securetf.attestation.emulated.amd import AmdTestPki
from securetf.attestation.rtmr import read_event_log, read_rtmr, replay_event_log
from securetf.errors import AttestationError
from tests.cas.server_support import attested_cas

from .support import Deployment, Job, fast_job_args, make_job

pytestmark = pytest.mark.slow


@dataclass
class Lab:
    dep: Deployment
    machines: dict[str, hardware.EmulatedMachine]
    hw: Path

    def env(self, tee: str) -> dict[str, str]:
        return self.machines[tee].environment()

    def reference(self, tee: str) -> dict[str, object]:
        """What `securetf attest verify --json` prints as the reference of this machine."""
        return self.machines[tee].reference()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("emulated")
    hw = base / "hw"
    hardware.create(hw)
    machines = {
        tee: hardware.EmulatedMachine(hw, tee, base / f"dev-{tee}") for tee in hardware.TEES
    }
    for machine in machines.values():
        machine.__enter__()
    try:
        pccs, kds = machines["tdx"].pccs_url, machines["sev-snp"].kds_url
        assert pccs
        assert kds
        args = ("--test-roots", str(hw / "roots"), "--pccs", pccs, "--kds", kds)
        with attested_cas(base, extra_args=args) as cas:
            public = cas.cli("owner", "keygen", base / "alice.key").stdout.strip()
            yield Lab(Deployment(cas, base / "alice.key", public), machines, hw)
    finally:
        for machine in machines.values():
            machine.__exit__(None, None, None)


def _job(lab: Lab, tee: str, *, allow: str, reference: dict[str, object]) -> Job:
    section = {"sev-snp": "sev-snp", "sgx": "sgx", "tdx": "tdx"}[tee]
    return make_job(
        lab.dep,
        **fast_job_args(),  # type: ignore[arg-type]
        allow=allow,
        tee_extra=f", {json.dumps(section)}: {json.dumps(reference)}",
        run_environment=lab.env(tee),
    )


@pytest.mark.parametrize("tee", hardware.TEES)
def test_a_job_runs_on_emulated_hardware(lab: Lab, tee: str) -> None:
    job = _job(lab, tee, allow=f"{tee}, test-roots", reference=lab.reference(tee))
    proc = job.run("ok", extra=["--tee", tee])
    assert proc.returncode == 0, proc.stderr
    assert "ok run 1" in proc.stdout


def test_a_policy_without_test_roots_refuses_emulated_evidence(lab: Lab) -> None:
    job = _job(lab, "tdx", allow="tdx", reference=lab.reference("tdx"))
    proc = job.run("ok", extra=["--tee", "tdx"])
    assert proc.returncode == AttestationError.exit_code, proc.stderr
    assert "TEST roots" in proc.stderr
    assert "names test-roots" in proc.stderr
    assert not job.started()


def test_evidence_binding_another_app_is_refused(lab: Lab) -> None:
    # The image is the allowed one; the app in it is not the one the policy measured.
    job = _job(lab, "sgx", allow="sgx, test-roots", reference=lab.reference("sgx"))
    allowed = job.policy_measurement("ok")
    with open(job.app / "prog.py", "a") as f:
        f.write("\nprint('a line added after the policy measured the app')\n")
    proc = job.run("ok", extra=["--tee", "sgx"])
    assert proc.returncode == AttestationError.exit_code, proc.stderr
    # Hardware evidence carries the app only in its binding: the CAS says none listed is
    # bound, and the runtime names what it measured and what an owner runs to allow it.
    assert "the evidence binds no app measurement that service 'ok'" in proc.stderr
    measured = job.policy_measurement("ok")
    assert measured != allowed
    assert f"This run measured the app as {measured}" in proc.stderr
    assert "securetf measure --policy POLICY.yaml --service ok" in proc.stderr
    assert allowed not in proc.stderr
    assert not job.started()


def test_a_wrong_rtmr_is_refused(lab: Lab) -> None:
    reference = lab.reference("tdx")
    reference["rtmr1"] = "ab" * 48
    job = _job(lab, "tdx", allow="tdx, test-roots", reference=reference)
    proc = job.run("ok", extra=["--tee", "tdx"])
    assert proc.returncode == AttestationError.exit_code, proc.stderr
    assert "rtmr1" in proc.stderr
    assert not job.started()


def test_tdx_runs_are_measured_into_rtmr3_and_replayed(lab: Lab) -> None:
    machine = lab.machines["tdx"]
    job = _job(lab, "tdx", allow="tdx, test-roots", reference=lab.reference("tdx"))
    before = (
        len(read_event_log(machine.rtmr_log.read_text().splitlines()))
        if machine.rtmr_log.exists()
        else 0
    )
    for run in (1, 2):
        proc = job.run("ok", extra=["--tee", "tdx"])
        assert proc.returncode == 0, proc.stderr
        assert f"ok run {run}" in proc.stdout
    events = read_event_log(machine.rtmr_log.read_text().splitlines())
    assert len(events) == before + 2
    assert events[-1].measurement == job.policy_measurement("ok")
    assert read_rtmr(3, root=machine.rtmr_root) == replay_event_log(events)
    # A policy that pins another boot value of RTMR3 is refused, whatever the log says.
    reference = lab.reference("tdx")
    reference["rtmr3"] = "cd" * 48
    other = _job(lab, "tdx", allow="tdx, test-roots", reference=reference)
    proc = other.run("ok", extra=["--tee", "tdx"])
    assert proc.returncode == AttestationError.exit_code, proc.stderr
    assert "rtmr3" in proc.stderr
    assert not other.started()


def test_an_snp_tcb_below_the_policy_minimum_is_refused(lab: Lab) -> None:
    reference = lab.reference("sev-snp")
    tcb = dict(reference["min_tcb"])  # type: ignore[call-overload]
    tcb["snp"] = int(tcb["snp"]) + 1
    reference["min_tcb"] = tcb
    job = _job(lab, "sev-snp", allow="sev-snp, test-roots", reference=reference)
    proc = job.run("ok", extra=["--tee", "sev-snp"])
    assert proc.returncode == AttestationError.exit_code, proc.stderr
    assert "snp" in proc.stderr
    assert not job.started()


def test_the_emulated_pkis_stay_test_only(lab: Lab) -> None:
    # Their evidence never verifies against the vendors' roots alone.
    amd = AmdTestPki.load(lab.hw / "amd")
    with pytest.raises(AttestationError):
        verify_evidence("sev-snp", amd.report(bytes(64)), now=int(time.time()), vcek=amd.vcek_der())
    assert os.stat(lab.hw / "amd").st_mode & 0o077 == 0

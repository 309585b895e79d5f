"""Attesting a CAS that runs on (emulated) SGX, TDX and SEV-SNP hardware.

A real ``securetf cas serve --tee <tee>`` process gets its evidence from an emulated device
(Gramine's /dev/attestation, configfs-tsm), and ``securetf cas attest`` verifies it with
collateral from the machine's local PCCS (or the VCEK the CAS attaches), the test roots,
and the reference values it is told to expect.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from securetf.attestation import Collateral, reference_values, verify_evidence
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.detect import GRAMINE_ROOT_ENV, TSM_ROOT_ENV, producer_for
from securetf.attestation.emulated import hardware
from securetf.attestation.emulated.amd import AmdTestPki
from securetf.attestation.emulated.intel import IntelTestPki
from securetf.attestation.snp_certs import vcek_from_cert_table
from securetf.errors import AttestationError, UsageError
from securetf.protocol import CasIdentityDoc
from tests.cas.server_support import EXE, CasProcess
from tests.ports import free_port

pytestmark = pytest.mark.slow

TEES = hardware.TEES
#: A value of each TEE's reference set, and a wrong one for it.
WRONG = {
    "sgx": ("mr_enclave", "ab" * 32),
    "tdx": ("rtmr1", "cd" * 48),
    "sev-snp": ("measurement", "ef" * 48),
}


@dataclass
class HardwareCas(CasProcess):
    """A CAS process that finds its TEE's device where the emulated machine mounted it."""

    device_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.device_env}


@dataclass
class Lab:
    hw: Path
    base: Path
    machines: dict[str, hardware.EmulatedMachine]
    cases: dict[str, HardwareCas]

    @property
    def roots(self) -> Path:
        return self.hw / "roots"

    def collateral_args(self, tee: str) -> list[str]:
        machine = self.machines[tee]
        if tee == "sev-snp":
            return []  # the CAS attaches its VCEK: no KDS needed
        assert machine.pccs_url
        return ["--pccs", machine.pccs_url]

    def reference(self, tee: str) -> dict[str, object]:
        """What `securetf attest verify --json` prints under reference for this machine."""
        root = self.machines[tee].device_root
        producer = (
            producer_for(tee, gramine_root=root)
            if tee == "sgx"
            else producer_for(tee, tsm_root=root)
        )
        evidence = producer.evidence(bytes(64))
        roots = EmulatedRoots.load(self.roots)
        now = int(time.time())
        if tee == "sev-snp":
            vcek = vcek_from_cert_table(evidence.aux)
            claims = verify_evidence(tee, evidence.data, now=now, vcek=vcek, test_roots=roots)
        else:
            pki = IntelTestPki.load(self.hw / "intel")
            collateral = Collateral.load(pki.collateral_json(tee).encode())
            claims = verify_evidence(
                tee, evidence.data, now=now, collateral=collateral, test_roots=roots
            )
        return reference_values(claims)

    def reference_file(self, name: str, value: object) -> Path:
        path = self.base / f"{name}.json"
        path.write_text(json.dumps(value))
        return path

    def attest(
        self, tee: str, *args: str | Path, home: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``securetf cas attest`` against the ``tee`` CAS, as a user runs it."""
        cas = self.cases[tee]
        env = {**os.environ, "SECURETF_HOME": str(home or cas.home)}
        for name in ("SECURETF_PCCS_URL", "SECURETF_KDS_URL", TSM_ROOT_ENV, GRAMINE_ROOT_ENV):
            env.pop(name, None)
        return subprocess.run(
            [*EXE, "cas", "attest", "--cas", cas.url, *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("hardware-cas")
    hw = base / "hw"
    hardware.create(hw)
    machines = {tee: hardware.EmulatedMachine(hw, tee, base / f"dev-{tee}") for tee in TEES}
    cases: dict[str, HardwareCas] = {}
    try:
        for tee, machine in machines.items():
            machine.__enter__()
            home = base / f"home-{tee}"
            home.mkdir()
            device = GRAMINE_ROOT_ENV if tee == "sgx" else TSM_ROOT_ENV
            cases[tee] = HardwareCas(
                data=base / f"cas-{tee}",
                home=home,
                port=free_port(),
                extra_args=("--tee", tee),
                device_env={device: str(machine.device_root)},
            )
            cases[tee].start()
        yield Lab(hw, base, machines, cases)
    finally:
        for cas in cases.values():
            cas.stop()
        for machine in machines.values():
            machine.__exit__(None, None, None)


def _pin(lab: Lab, tee: str, home: Path | None = None) -> dict[str, str]:
    pins = (home or lab.cases[tee].home) / "cas-pins"
    [path] = pins.glob("*.json")  # beside it: the kept log checkpoint and its lock
    pin: dict[str, str] = json.loads(path.read_text())
    return pin


@pytest.mark.parametrize("tee", TEES)
def test_a_hardware_cas_with_its_reference_is_attested(lab: Lab, tee: str) -> None:
    reference = lab.reference(tee)
    ref = lab.reference_file(f"ref-{tee}", reference)
    out = lab.attest(
        tee, "--test-roots", lab.roots, *lab.collateral_args(tee), "--expect-reference", ref
    )
    assert out.returncode == 0, out.stderr
    assert f"CAS verified: tee {tee}" in out.stdout
    assert "code identity checked" in out.stdout
    assert "EMULATED" in out.stderr  # --test-roots always says so
    assert "NOT checked" not in out.stderr
    pin = _pin(lab, tee)
    assert pin["tee"] == tee
    # The pin records the hardware measurement, named by its TEE.
    main = reference["mr_enclave" if tee == "sgx" else "mr_td" if tee == "tdx" else "measurement"]
    assert pin["measurement"] == f"{tee}:{main}"
    # The pinned certificate is the CAS's own.
    served = (lab.cases[tee].data / "identity" / "tls.crt").read_text()
    assert pin["certificate_pem"] == served


def test_an_snp_cas_attaches_its_vcek(lab: Lab) -> None:
    nonce = base64.urlsafe_b64encode(bytes(32)).decode().rstrip("=")
    answer = httpx.get(
        f"{lab.cases['sev-snp'].url}/v1/identity?nonce={nonce}",
        verify=False,  # noqa: S501 - the document is checked by content, not by TLS
    )
    doc = CasIdentityDoc.model_validate_json(answer.content)
    assert doc.vcek == AmdTestPki.load(lab.hw / "amd").vcek_der()
    # Without a VCEK to attach, the document keeps its old shape (no null field).
    answer = httpx.get(
        f"{lab.cases['tdx'].url}/v1/identity?nonce={nonce}",
        verify=False,  # noqa: S501 - as above
    )
    assert "vcek" not in answer.json()


@pytest.mark.parametrize("tee", TEES)
def test_emulated_hardware_is_refused_without_test_roots(lab: Lab, tee: str) -> None:
    ref = lab.reference_file(f"ref-{tee}", lab.reference(tee))
    out = lab.attest(tee, *lab.collateral_args(tee), "--expect-reference", ref)
    assert out.returncode == AttestationError.exit_code, out.stderr
    assert "CAS verified" not in out.stdout


@pytest.mark.parametrize("tee", TEES)
def test_a_wrong_reference_value_is_refused_and_named(lab: Lab, tee: str) -> None:
    name, wrong = WRONG[tee]
    reference = {**lab.reference(tee), name: wrong}
    ref = lab.reference_file(f"wrong-{tee}", reference)
    home = lab.base / f"home-wrong-{tee}"
    out = lab.attest(
        tee,
        "--test-roots",
        lab.roots,
        *lab.collateral_args(tee),
        "--expect-reference",
        ref,
        home=home,
    )
    assert out.returncode == AttestationError.exit_code, out.stderr
    assert name in out.stderr
    assert wrong in out.stderr  # the expected value, named
    assert str(lab.reference(tee)[name]) in out.stderr  # and the CAS's
    assert not (home / "cas-pins").exists()


def test_a_reference_for_another_tee_is_refused(lab: Lab) -> None:
    ref = lab.reference_file("tdx-for-sgx", lab.reference("tdx"))
    out = lab.attest(
        "sgx", "--test-roots", lab.roots, *lab.collateral_args("sgx"), "--expect-reference", ref
    )
    assert out.returncode == AttestationError.exit_code, out.stderr
    assert "runs on sgx" in out.stderr
    assert "for tdx" in out.stderr


def test_the_whole_verify_output_and_a_tee_section_are_references_too(lab: Lab) -> None:
    reference = lab.reference("tdx")
    other = {**reference, "mr_td": "00" * 48}
    forms = {
        "verify-json": {"tee": "tdx", "reference": reference, "measurement": "ignored"},
        "tee-section": {"tdx": [other, reference]},  # one of them matches
    }
    for name, value in forms.items():
        ref = lab.reference_file(name, value)
        out = lab.attest(
            "tdx", "--test-roots", lab.roots, *lab.collateral_args("tdx"), "--expect-reference", ref
        )
        assert out.returncode == 0, (name, out.stderr)


def test_a_malformed_reference_file_is_a_usage_error(lab: Lab) -> None:
    bad = {"mr_td": "xyz"}
    for content in ("not json", "[]", json.dumps(bad)):
        ref = lab.base / "bad-ref.json"
        ref.write_text(content)
        out = lab.attest(
            "tdx", "--test-roots", lab.roots, *lab.collateral_args("tdx"), "--expect-reference", ref
        )
        assert out.returncode == UsageError.exit_code, (content, out.stderr)


@pytest.mark.parametrize("tee", TEES)
def test_without_a_reference_the_cas_is_accepted_with_a_warning(lab: Lab, tee: str) -> None:
    home = lab.base / f"home-unchecked-{tee}"
    out = lab.attest(tee, "--test-roots", lab.roots, *lab.collateral_args(tee), home=home)
    assert out.returncode == 0, out.stderr
    assert "NOT checked" in out.stderr
    assert "--expect-reference FILE" in out.stderr
    # The reference values are printed, ready to be saved for --expect-reference.
    printed = out.stdout[out.stdout.index("{") : out.stdout.rindex("}") + 1]
    assert json.loads(printed) == lab.reference(tee)
    assert _pin(lab, tee, home)["tee"] == tee


def test_an_expected_measurement_names_the_tee(lab: Lab) -> None:
    mr_td = str(lab.reference("tdx")["mr_td"])
    args: list[str | Path] = ["--test-roots", lab.roots, *lab.collateral_args("tdx")]
    home = lab.base / "home-measurement"
    out = lab.attest("tdx", *args, "--expect-measurement", f"tdx:{mr_td}", home=home)
    assert out.returncode == 0, out.stderr
    assert "NOT checked" not in out.stderr
    wrong = lab.attest("tdx", *args, "--expect-measurement", "tdx:" + "00" * 48, home=home)
    assert wrong.returncode == AttestationError.exit_code
    assert "00" * 48 in wrong.stderr
    # A package measurement (what sim evidence reports) is not what a TD reports.
    package = lab.attest("tdx", *args, "--expect-measurement", "sha256:" + "00" * 32, home=home)
    assert package.returncode == AttestationError.exit_code
    assert "only sim evidence reports" in package.stderr


def test_collateral_is_needed_and_then_cached(lab: Lab) -> None:
    home = lab.base / "home-cache"
    ref = lab.reference_file("ref-sgx-cache", lab.reference("sgx"))
    args = ("--test-roots", lab.roots, "--expect-reference", ref)
    out = lab.attest("sgx", *args, home=home)
    assert out.returncode == AttestationError.exit_code, out.stderr
    assert "--pccs" in out.stderr
    out = lab.attest("sgx", *args, *lab.collateral_args("sgx"), home=home)
    assert out.returncode == 0, out.stderr
    assert list((home / "collateral").glob("dcap-sgx-*.json"))
    # Later, the cache serves it: no PCCS needed.
    out = lab.attest("sgx", *args, home=home)
    assert out.returncode == 0, out.stderr

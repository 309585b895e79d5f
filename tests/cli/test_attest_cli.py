"""``securetf attest``: exit codes and output, against the real test vectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from securetf.attestation import SimProducer
from securetf.cli.main import main
from tests.attestation.vectors import DCAP, SNP_AT, SNP_REPORT_FILE, SNP_VCEK_FILE, vector

SGX = DCAP[0]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def sgx_args(*extra: str) -> list[str]:
    return [
        "attest",
        "verify",
        str(vector(SGX.quote_file)),
        "--tee",
        "sgx",
        "--collateral",
        str(vector(SGX.collateral_file)),
        *extra,
    ]


def test_sgx_passes_with_its_conditions_tolerated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        sgx_args(
            "--now", str(SGX.at), "--tolerate", "sw-hardening-needed,configuration-needed", "--json"
        ),
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["tee"] == "sgx"
    assert doc["status"] == "ConfigurationAndSWHardeningNeeded"
    assert doc["advisories"] == list(SGX.advisories)
    assert doc["measurement"] == SGX.measurement
    assert len(doc["report_data"]) == 128


def test_sgx_status_not_tolerated_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(sgx_args("--now", str(SGX.at), "--tolerate", "sw-hardening-needed"), capsys)
    assert code == 5
    assert "carries condition configuration-needed" in err
    assert "--tolerate" in err


def test_expired_collateral_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(sgx_args(), capsys)  # default --now: the wall clock
    assert code == 5
    assert "not valid at the given time" in err


def test_tampered_quote_exits_5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quote = bytearray(SGX.quote)
    quote[600] ^= 1
    path = tmp_path / "q.bin"
    path.write_bytes(bytes(quote))
    argv = sgx_args("--now", str(SGX.at))
    argv[2] = str(path)
    assert run(argv, capsys)[0] == 5


def test_snp_hex_report_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "attest",
            "verify",
            str(vector(SNP_REPORT_FILE)),
            "--tee",
            "sev-snp",
            "--vcek",
            str(vector(SNP_VCEK_FILE)),
            "--now",
            str(SNP_AT),
        ],
        capsys,
    )
    assert code == 0
    assert "verified sev-snp evidence: TCB status UpToDate" in out


def test_snp_with_a_non_vcek_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["attest", "verify", str(vector(SNP_REPORT_FILE)), "--tee", "sev-snp"]
    argv += ["--vcek", str(vector("snp/ask-genoa.pem")), "--now", str(SNP_AT)]
    code, _, err = run(argv, capsys)
    assert code == 5
    assert "not by the ASK of a known product" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["attest", "verify", "/nonexistent", "--tee", "sgx"],
        ["attest", "verify", SNP_REPORT_FILE, "--tee", "sev-snp"],
        ["attest", "verify", SNP_REPORT_FILE, "--tee", "sev-snp", "--vcek", "/etc/hostname"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # The report must exist, so that the exit code is about what the test names.
    argv = [str(vector(a)) if a == SNP_REPORT_FILE else a for a in argv]
    assert run(argv, capsys)[0] == 2


def test_unknown_condition_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sgx_args("--now", str(SGX.at), "--tolerate", "revoked"), capsys)[0] == 2


def test_sim_round_trip_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECURETF_HOME", str(tmp_path))
    evidence = SimProducer(b"\x01" * 32, home=tmp_path, clock=lambda: 1_700_000_000).evidence(
        b"\x02" * 64
    )
    path = tmp_path / "sim.hex"
    path.write_text(evidence.data.hex())
    code, out, _ = run(
        ["attest", "verify", str(path), "--tee", "sim", "--now", "1700000000", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out)["measurement"] == "01" * 32
    code, out, _ = run(["attest", "sim-key"], capsys)
    assert code == 0
    assert out.startswith("ed25519:")


def test_installed_command_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "securetf.cli.main", *sgx_args("--now", str(SGX.at))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 5
    assert "TCB status ConfigurationAndSWHardeningNeeded" in proc.stderr

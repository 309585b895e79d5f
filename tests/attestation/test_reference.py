"""Reference values: what `attest verify --json` prints pastes into a policy and passes;
each changed value, a debug TEE and a TCB below the minimum are refused by name."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from securetf.attestation import Claims, appraise, verify_dcap, verify_snp
from securetf.cli.main import main
from securetf.errors import AttestationError, PolicyError
from securetf.policy import Tee
from tests.attestation.vectors import (
    DCAP,
    SNP_AT,
    SNP_REPORT_FILE,
    SNP_VCEK_FILE,
    DcapVector,
    snp_report,
    snp_vcek,
    vector,
)
from tests.policy._support import make_policy

TOLERATE = ["configuration-needed", "sw-hardening-needed"]
SGX, TDX = DCAP[0], DCAP[1]


def printed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """What `securetf attest verify ... --json` prints."""
    with pytest.raises(SystemExit) as info:
        main(["attest", "verify", *argv, "--json"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def dcap_printed(v: DcapVector, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    argv = [str(vector(v.quote_file)), "--tee", v.tee]
    argv += ["--collateral", str(vector(v.collateral_file)), "--now", str(v.at)]
    return printed([*argv, "--tolerate", ",".join(TOLERATE)], capsys)


def snp_printed(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    argv = [str(vector(SNP_REPORT_FILE)), "--tee", "sev-snp", "--vcek", str(vector(SNP_VCEK_FILE))]
    return printed([*argv, "--now", str(SNP_AT)], capsys)


def tee_with(tee: str, reference: object) -> Tee:
    """A policy whose tee section holds ``reference`` pasted as JSON, parsed from YAML."""
    section = {"allow": [tee], "tolerate": TOLERATE, "ignore_advisories": [], tee: reference}
    return make_policy(tee=json.dumps(section)).tee


def check(claims: Claims, tee: Tee) -> Claims:
    return appraise(
        claims,
        allowed_tees=tee.allow,
        expected_measurements=(),
        expected_report_data=claims.report_data,
        tolerate=tee.tolerate,
        references=tee,
    )


def dcap_claims(v: DcapVector) -> Claims:
    return verify_dcap(v.quote, v.collateral, tee=v.tee, now=v.at)


def snp_claims() -> Claims:
    return verify_snp(snp_report(), snp_vcek(), now=SNP_AT)


@pytest.mark.parametrize("v", DCAP, ids=[v.name for v in DCAP])
def test_printed_dcap_values_paste_into_a_policy_and_pass(
    v: DcapVector, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = dcap_printed(v, capsys)["reference"]
    assert check(dcap_claims(v), tee_with(v.tee, reference)).tee == v.tee
    if v.tee == "tdx":
        assert {f"rtmr{i}" for i in range(4)} <= reference.keys()
        assert len(reference["mr_td"]) == 96


def test_printed_snp_values_paste_into_a_policy_and_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = snp_printed(capsys)["reference"]
    assert reference["min_tcb"] == {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
    assert reference["allow_smt"] is True  # this guest's policy (0x30000) allows SMT
    assert check(snp_claims(), tee_with("sev-snp", reference)).tee == "sev-snp"


def test_sgx_by_signer_passes_and_checks_the_svn(capsys: pytest.CaptureFixture[str]) -> None:
    printed_ = dcap_printed(SGX, capsys)["reference"]
    by_signer = {k: printed_[k] for k in ("mr_signer", "isv_prod_id", "min_isv_svn")}
    check(dcap_claims(SGX), tee_with("sgx", by_signer))
    with pytest.raises(AttestationError, match="isv_svn 0 is below the policy's min_isv_svn 1"):
        check(dcap_claims(SGX), tee_with("sgx", {**by_signer, "min_isv_svn": 1}))
    with pytest.raises(AttestationError, match="isv_prod_id is 0, the policy expects 7"):
        check(dcap_claims(SGX), tee_with("sgx", {**by_signer, "isv_prod_id": 7}))
    with pytest.raises(AttestationError, match="mr_signer is 815f42f1"):
        check(dcap_claims(SGX), tee_with("sgx", {**by_signer, "mr_signer": "00" * 32}))


@pytest.mark.parametrize("field", ["mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id"])
def test_a_changed_tdx_value_is_refused_by_name(
    field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = dcap_printed(TDX, capsys)["reference"]
    reference[field] = "ab" * 48
    with pytest.raises(AttestationError, match=f"{field} is [0-9a-f]{{96}}, the policy expects ab"):
        check(dcap_claims(TDX), tee_with("tdx", reference))


def test_the_printed_mrenclave_of_another_enclave_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = dcap_printed(SGX, capsys)["reference"]
    with pytest.raises(AttestationError, match="mr_enclave is 33d8736d"):
        check(dcap_claims(SGX), tee_with("sgx", {"mr_enclave": "11" * 32}))
    # One matching set among several passes; none matching names each set's problems.
    check(dcap_claims(SGX), tee_with("sgx", [{"mr_enclave": "11" * 32}, reference]))
    with pytest.raises(AttestationError, match=r"tee\.sgx\[0\]: mr_enclave .* \| tee\.sgx\[1\]"):
        check(dcap_claims(SGX), tee_with("sgx", [{"mr_enclave": "11" * 32}] * 2))


@pytest.mark.parametrize("part", ["bootloader", "tee", "snp", "microcode"])
def test_snp_tcb_below_the_minimum_is_refused(
    part: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = snp_printed(capsys)["reference"]
    reference["min_tcb"][part] += 1
    with pytest.raises(AttestationError, match=f"TCB's {part} .* below the policy's min_tcb"):
        check(snp_claims(), tee_with("sev-snp", reference))


def test_snp_guest_policy_vmpl_and_host_data(capsys: pytest.CaptureFixture[str]) -> None:
    reference = snp_printed(capsys)["reference"]
    with pytest.raises(AttestationError, match="allows SMT, and the policy says allow_smt: false"):
        check(snp_claims(), tee_with("sev-snp", {**reference, "allow_smt": False}))
    with pytest.raises(AttestationError, match=r"vmpl 0 is not among the policy's vmpl \[1, 2\]"):
        check(snp_claims(), tee_with("sev-snp", {**reference, "vmpl": [1, 2]}))
    with pytest.raises(AttestationError, match="host_data is 0000"):
        check(snp_claims(), tee_with("sev-snp", {**reference, "host_data": "01" * 32}))
    with pytest.raises(AttestationError, match="measurement is 7a1e5c26"):
        check(snp_claims(), tee_with("sev-snp", {**reference, "measurement": "02" * 48}))


@pytest.mark.parametrize(
    ("tee", "name"),
    [
        ("sgx", "SGX ATTRIBUTES.DEBUG"),
        ("tdx", "TD_ATTRIBUTES.DEBUG"),
        ("sev-snp", "guest policy's DEBUG bit"),
    ],
)
def test_debug_evidence_is_refused_by_name(
    tee: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The verifiers set `debug` from these bits (tests/attestation/test_dcap.py, test_snp.py);
    # a real vector with the bit set would not verify, so the claims are changed here.
    if tee == "sev-snp":
        claims, reference = snp_claims(), snp_printed(capsys)["reference"]
    else:
        v = SGX if tee == "sgx" else TDX
        claims, reference = dcap_claims(v), dcap_printed(v, capsys)["reference"]
    policy = tee_with(tee, reference)
    check(claims, policy)
    with pytest.raises(AttestationError, match=f"debug-mode TEE .*{name}"):
        check(dataclasses.replace(claims, debug=True), policy)


def test_a_hardware_tee_without_reference_values_fails_closed() -> None:
    tee = make_policy(tee=json.dumps({"allow": ["sgx"], "tolerate": TOLERATE})).tee
    with pytest.raises(AttestationError, match="names no reference values for sgx"):
        check(dcap_claims(SGX), tee)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sgx": {"mr_signer": "00" * 32}}, "give all three"),
        ({"sgx": {}}, "name the enclave"),
        ({"sgx": {"mr_enclave": "AB" * 32}}, "mr_enclave"),
        ({"tdx": {"mr_td": "00" * 32}}, "mr_td"),  # 32 bytes where 48 belong
        ({"sev-snp": {"measurement": "00" * 48}}, "min_tcb"),
        ({"sev_snp": {}}, "sev_snp"),
    ],
)
def test_malformed_reference_values_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        make_policy(tee=json.dumps({"allow": ["sgx"], **section}))


def test_policies_without_reference_values_keep_their_hash() -> None:
    # A policy written before reference values existed must keep its hash (its successors
    # name it as predecessor): empty reference lists stay out of the canonical form.
    dumped = make_policy().model_dump(mode="json")["tee"]
    assert dumped == {"allow": ["sim"], "tolerate": [], "ignore_advisories": []}

"""Appraisal: each rule has a case that fails, and a policy that passes."""

from __future__ import annotations

import logging

import pytest

from securetf.attestation import Claims, appraise
from securetf.errors import AttestationError, MeasurementError, UsageError

M = b"\x01" * 48
RD = b"\x02" * 64


def claims(tee: str = "tdx", status: str = "UpToDate", *, debug: bool = False) -> Claims:
    return Claims(
        tee=tee, measurement=M, report_data=RD, signer="t", tcb_status=status, debug=debug
    )


def ok(c: Claims, **overrides: object) -> Claims:
    policy: dict[str, object] = {
        "allowed_tees": {"tdx"},
        "expected_measurements": {M},
        "expected_report_data": RD,
    }
    policy.update(overrides)
    return appraise(c, **policy)  # type: ignore[arg-type]


def test_a_matching_policy_passes() -> None:
    assert ok(claims()) == claims()


def test_tee_not_allowed() -> None:
    with pytest.raises(AttestationError, match="TEE sev-snp is not allowed"):
        ok(claims("sev-snp"))


def test_sim_must_be_named(caplog: pytest.LogCaptureFixture) -> None:
    sim = claims("sim", "Simulated")
    with pytest.raises(AttestationError, match="simulation protects nothing"):
        ok(sim, allowed_tees={"tdx", "sgx", "sev-snp"})
    with caplog.at_level(logging.WARNING):
        ok(sim, allowed_tees={"sim"})
    assert "SIMULATED" in caplog.text


def test_test_roots_must_be_named(caplog: pytest.LogCaptureFixture) -> None:
    emulated = Claims(
        tee="tdx",
        measurement=M,
        report_data=RD,
        signer="t",
        tcb_status="UpToDate",
        test_roots=True,
    )
    with pytest.raises(AttestationError, match=r"TEST roots.*names test-roots"):
        ok(emulated)
    with caplog.at_level(logging.WARNING):
        assert ok(emulated, allowed_tees={"tdx", "test-roots"}) == emulated
    assert "EMULATED hardware" in caplog.text
    # Naming test-roots does not let another TEE in.
    with pytest.raises(AttestationError, match="TEE sev-snp is not allowed"):
        ok(claims("sev-snp"), allowed_tees={"tdx", "test-roots"})


def test_empty_expected_measurements_fail_closed() -> None:
    with pytest.raises(AttestationError, match="lists no expected measurement"):
        ok(claims(), expected_measurements=set())


def test_other_measurement_fails_naming_only_the_evidences_own() -> None:
    expected = b"\x03" * 48
    with pytest.raises(MeasurementError, match="is not one the policy expects") as refused:
        ok(claims(), expected_measurements={expected})
    # As --expect-measurement and a policy write it: <tee>:<hex>, sha256:<hex> for sim.
    assert f"measurement tdx:{M.hex()} " in str(refused.value)
    assert expected.hex() not in str(refused.value)
    sim = Claims(tee="sim", measurement=M[:32], report_data=RD, signer="t", tcb_status="UpToDate")
    with pytest.raises(MeasurementError, match=f"measurement sha256:{M[:32].hex()} is not"):
        ok(sim, allowed_tees={"sim"}, expected_measurements={expected[:32]})


def test_report_data_binding() -> None:
    with pytest.raises(AttestationError, match="report data does not match"):
        ok(claims(), expected_report_data=b"\x00" * 64)
    with pytest.raises(UsageError):
        ok(claims(), expected_report_data=b"short")


def test_tcb_tolerance_and_debug_apply() -> None:
    with pytest.raises(AttestationError, match=r"add out-of-date to tee\.tolerate"):
        ok(claims(status="OutOfDate"))
    ok(claims(status="OutOfDate"), tolerate={"out-of-date"})
    with pytest.raises(AttestationError, match="Revoked"):
        ok(claims(status="Revoked"), tolerate={"out-of-date"})
    with pytest.raises(AttestationError, match="debug-mode"):
        ok(claims(debug=True))
    ok(claims(debug=True), allow_debug=True)


def test_unknown_tee_name_in_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown TEE"):
        ok(claims(), allowed_tees={"tdx", "sgx2"})

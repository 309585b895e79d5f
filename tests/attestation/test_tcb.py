"""TCB tolerance: every status, every condition, advisories, debug."""

from __future__ import annotations

import pytest

from securetf.attestation import CONDITIONS, STATUS_CONDITIONS, Claims, appraise_platform
from securetf.errors import AttestationError, UsageError


def claims(status: str, advisories: tuple[str, ...] = (), *, debug: bool = False) -> Claims:
    return Claims(
        tee="sgx",
        measurement=b"m" * 32,
        report_data=bytes(64),
        signer="test",
        tcb_status=status,
        advisories=advisories,
        debug=debug,
    )


@pytest.mark.parametrize("status", sorted(STATUS_CONDITIONS))
def test_each_status_passes_exactly_when_its_conditions_are_tolerated(status: str) -> None:
    needed = STATUS_CONDITIONS[status]
    appraise_platform(claims(status), tolerate=needed)
    appraise_platform(claims(status), tolerate=CONDITIONS)
    for condition in needed:
        with pytest.raises(AttestationError, match=f"TCB status {status} carries condition"):
            appraise_platform(claims(status), tolerate=needed - {condition})


def test_message_names_status_and_setting() -> None:
    with pytest.raises(AttestationError) as info:
        appraise_platform(claims("OutOfDate"), tolerate=())
    assert str(info.value).startswith(
        "TCB status OutOfDate carries condition out-of-date; add out-of-date to tee.tolerate"
    )


@pytest.mark.parametrize("status", ["Revoked", "unknown", "OK", "", "Simulated"])
def test_revoked_unknown_and_foreign_statuses_never_pass(status: str) -> None:
    with pytest.raises(AttestationError):
        appraise_platform(claims(status), tolerate=CONDITIONS)


def test_advisories_ride_with_a_tolerated_status() -> None:
    c = claims("SWHardeningNeeded", ("INTEL-SA-00615",))
    assert appraise_platform(c, tolerate={"sw-hardening-needed"}).advisories == ("INTEL-SA-00615",)
    with pytest.raises(AttestationError, match="advisories: INTEL-SA-00615"):
        appraise_platform(c, tolerate=())


def test_advisories_with_up_to_date_fail_unless_ignored() -> None:
    c = claims("UpToDate", ("INTEL-SA-00001", "INTEL-SA-00002"))
    with pytest.raises(AttestationError, match=r"tee\.ignore_advisories"):
        appraise_platform(c, tolerate=CONDITIONS)
    with pytest.raises(AttestationError, match="INTEL-SA-00002"):
        appraise_platform(c, tolerate=(), ignore_advisories={"INTEL-SA-00001"})
    appraise_platform(c, tolerate=(), ignore_advisories={"INTEL-SA-00001", "INTEL-SA-00002"})


def test_debug_needs_allow_debug() -> None:
    with pytest.raises(AttestationError, match="debug-mode"):
        appraise_platform(claims("UpToDate", debug=True), tolerate=CONDITIONS)
    appraise_platform(claims("UpToDate", debug=True), tolerate=(), allow_debug=True)


def test_unknown_condition_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown TCB condition"):
        appraise_platform(claims("UpToDate"), tolerate={"revoked"})

"""Simulated evidence: format, trust, tampering, freshness, and its loud warnings."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.attestation.sim import (
    MAX_AGE,
    MAX_CLOCK_SKEW,
    SIM_EVIDENCE_SIZE,
    sign_sim_evidence,
    verify_sim,
)
from securetf.crypto import SigningKey
from securetf.errors import AttestationError, UsageError

KEY = SigningKey.generate()
TRUSTED = frozenset({KEY.verify_key()})
MEASUREMENT = bytes(range(32))
REPORT_DATA = bytes(range(64))
NOW = 1_700_000_000
EVIDENCE = sign_sim_evidence(KEY, measurement=MEASUREMENT, report_data=REPORT_DATA, timestamp=NOW)


def test_round_trip_gives_the_claims() -> None:
    claims = verify_sim(EVIDENCE, trusted=TRUSTED, now=NOW)
    assert (claims.tee, claims.measurement, claims.report_data) == ("sim", MEASUREMENT, REPORT_DATA)
    assert claims.timestamp == NOW
    assert claims.signer == KEY.verify_key().to_text()
    assert claims.tcb_status == "Simulated"
    assert len(EVIDENCE) == SIM_EVIDENCE_SIZE == 208


def test_format_is_as_documented() -> None:
    assert EVIDENCE[:8] == b"STFSIM01"
    assert EVIDENCE[8:40] == MEASUREMENT
    assert EVIDENCE[40:104] == REPORT_DATA
    assert int.from_bytes(EVIDENCE[104:112], "big") == NOW
    assert EVIDENCE[112:144] == KEY.verify_key().raw()
    KEY.verify_key().verify(EVIDENCE[144:], EVIDENCE[:144])


def test_production_and_acceptance_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        evidence = sign_sim_evidence(
            KEY, measurement=MEASUREMENT, report_data=REPORT_DATA, timestamp=NOW
        )
        verify_sim(evidence, trusted=TRUSTED, now=NOW)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("produced" in m and "NO hardware protection" in m for m in messages)
    assert any("accepted" in m and "NO hardware protection" in m for m in messages)


def test_no_trusted_key_fails_closed() -> None:
    with pytest.raises(AttestationError, match="no sim platform key is trusted"):
        verify_sim(EVIDENCE, trusted=frozenset(), now=NOW)


def test_untrusted_platform_key_fails() -> None:
    other = frozenset({SigningKey.generate().verify_key()})
    with pytest.raises(AttestationError, match="untrusted platform key"):
        verify_sim(EVIDENCE, trusted=other, now=NOW)


def test_evidence_signed_by_another_key_naming_a_trusted_key_fails() -> None:
    forged = sign_sim_evidence(
        SigningKey.generate(), measurement=MEASUREMENT, report_data=REPORT_DATA, timestamp=NOW
    )
    forged = forged[:112] + KEY.verify_key().raw() + forged[144:]
    with pytest.raises(AttestationError, match="signature is invalid"):
        verify_sim(forged, trusted=TRUSTED, now=NOW)


@settings(max_examples=300, deadline=None)
@given(bit=st.integers(min_value=0, max_value=SIM_EVIDENCE_SIZE * 8 - 1))
def test_any_flipped_bit_fails(bit: int) -> None:
    tampered = bytearray(EVIDENCE)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AttestationError):
        verify_sim(bytes(tampered), trusted=TRUSTED, now=NOW)


@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with pytest.raises(AttestationError):
        verify_sim(data, trusted=TRUSTED, now=NOW)


@pytest.mark.parametrize("evidence", [EVIDENCE[:-1], EVIDENCE + b"\0", b""])
def test_truncated_or_oversized_fails(evidence: bytes) -> None:
    with pytest.raises(AttestationError, match="truncated, oversized"):
        verify_sim(evidence, trusted=TRUSTED, now=NOW)


def test_bad_magic_fails() -> None:
    with pytest.raises(AttestationError, match="bad magic"):
        verify_sim(b"X" + EVIDENCE[1:], trusted=TRUSTED, now=NOW)


def test_freshness_window() -> None:
    verify_sim(EVIDENCE, trusted=TRUSTED, now=NOW + MAX_AGE)
    verify_sim(EVIDENCE, trusted=TRUSTED, now=NOW - MAX_CLOCK_SKEW)
    with pytest.raises(AttestationError, match="old"):
        verify_sim(EVIDENCE, trusted=TRUSTED, now=NOW + MAX_AGE + 1)
    with pytest.raises(AttestationError, match="future"):
        verify_sim(EVIDENCE, trusted=TRUSTED, now=NOW - MAX_CLOCK_SKEW - 1)


@pytest.mark.parametrize(
    ("measurement", "report_data", "timestamp"),
    [(b"short", REPORT_DATA, NOW), (MEASUREMENT, b"short", NOW), (MEASUREMENT, REPORT_DATA, -1)],
)
def test_signing_refuses_bad_fields(measurement: bytes, report_data: bytes, timestamp: int) -> None:
    with pytest.raises(UsageError):
        sign_sim_evidence(
            KEY, measurement=measurement, report_data=report_data, timestamp=timestamp
        )

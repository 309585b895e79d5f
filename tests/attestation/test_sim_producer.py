"""The sim producer end to end: its evidence verifies under the default local trust."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from securetf.attestation import SimProducer, default_sim_trust, verify_sim
from securetf.errors import UsageError


def test_evidence_verifies_with_the_local_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    producer = SimProducer(b"\x07" * 32, home=tmp_path, clock=lambda: 1_700_000_000.5)
    with caplog.at_level(logging.WARNING):
        evidence = producer.evidence(b"\x09" * 64)
    assert "NO hardware protection" in caplog.text
    assert evidence.tee == "sim"
    claims = verify_sim(evidence.data, trusted=default_sim_trust(tmp_path), now=1_700_000_001)
    assert claims.measurement == b"\x07" * 32
    assert claims.report_data == b"\x09" * 64
    assert claims.timestamp == 1_700_000_000


def test_bad_sizes_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        SimProducer(b"short", home=tmp_path)
    with pytest.raises(UsageError, match="64 bytes"):
        SimProducer(b"\x07" * 32, home=tmp_path).evidence(b"short")

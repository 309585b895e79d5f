"""Gramine's /dev/attestation against a fake tree that returns the real SGX quote."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetf.attestation import GramineProducer, verify_dcap
from securetf.errors import AttestationError
from tests.attestation.vectors import DCAP


def fake_gramine(root: Path, quote: bytes, kind: str = "dcap") -> Path:
    root.mkdir()
    (root / "attestation_type").write_text(kind)
    (root / "user_report_data").write_bytes(bytes(64))
    (root / "quote").write_bytes(quote)
    return root


def test_quote_from_gramine_verifies(tmp_path: Path) -> None:
    v = DCAP[0]
    root = fake_gramine(tmp_path / "attestation", v.quote)
    evidence = GramineProducer(root=root).evidence(b"\x0a" * 64)
    assert (root / "user_report_data").read_bytes() == b"\x0a" * 64
    assert evidence.tee == "sgx"
    claims = verify_dcap(evidence.data, v.collateral, tee="sgx", now=v.at)
    assert claims.measurement.hex() == v.measurement


@pytest.mark.parametrize("kind", ["none", "epid"])
def test_no_dcap_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    root = fake_gramine(tmp_path / "attestation", b"q", kind)
    with pytest.raises(AttestationError, match="not inside a Gramine SGX enclave"):
        GramineProducer(root=root).evidence(b"\x0a" * 64)


def test_outside_gramine_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="no DCAP attestation"):
        GramineProducer(root=tmp_path / "absent").evidence(b"\x0a" * 64)


def test_empty_quote_is_refused(tmp_path: Path) -> None:
    root = fake_gramine(tmp_path / "attestation", b"")
    with pytest.raises(AttestationError, match="empty quote"):
        GramineProducer(root=root).evidence(b"\x0a" * 64)

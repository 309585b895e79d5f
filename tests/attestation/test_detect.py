"""Autodetection of the TEE, and producers only for the TEE that is really there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from securetf.attestation import (
    ConfigfsTsmProducer,
    GramineProducer,
    SimProducer,
    detect_tee,
    producer_for,
)
from securetf.errors import AttestationError, UsageError
from tests.attestation.test_gramine import fake_gramine
from tests.attestation.test_tsm import fake_mkdir


def test_nothing_found(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match=r"no TEE found.*--tee sim"):
        detect_tee(tsm_root=tmp_path / "tsm", gramine_root=tmp_path / "att")


def test_gramine_is_sgx(tmp_path: Path) -> None:
    gramine = fake_gramine(tmp_path / "att", b"q")
    assert detect_tee(tsm_root=tmp_path / "tsm", gramine_root=gramine) == "sgx"
    producer = producer_for("sgx", tsm_root=tmp_path / "tsm", gramine_root=gramine)
    assert isinstance(producer, GramineProducer)


@pytest.mark.parametrize(("provider", "tee"), [("tdx_guest", "tdx"), ("sev_guest", "sev-snp")])
def test_configfs_provider_decides(tmp_path: Path, provider: str, tee: str) -> None:
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    mk, rm = fake_mkdir(provider, b""), shutil.rmtree
    assert detect_tee(tsm_root=tsm, gramine_root=tmp_path / "att", mkdir=mk, rmdir=rm) == tee
    producer = producer_for(tee, tsm_root=tsm, gramine_root=tmp_path / "att", mkdir=mk, rmdir=rm)
    assert isinstance(producer, ConfigfsTsmProducer)
    assert producer.tee == tee
    other = "sev-snp" if tee == "tdx" else "tdx"
    with pytest.raises(AttestationError, match=f"asked for {other} evidence, but this machine"):
        producer_for(other, tsm_root=tsm, gramine_root=tmp_path / "att", mkdir=mk, rmdir=rm)


def test_sim_is_never_detected_only_asked_for(tmp_path: Path) -> None:
    producer = producer_for("sim", measurement=b"\x01" * 32, home=tmp_path)
    assert isinstance(producer, SimProducer)
    with pytest.raises(UsageError, match="needs the service measurement"):
        producer_for("sim", home=tmp_path)
    with pytest.raises(UsageError, match="unknown TEE"):
        producer_for("sgx-sim")

"""configfs-tsm against a fake tree that hands out the real quote and report bytes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from securetf.attestation import ConfigfsTsmProducer, verify_dcap, verify_snp
from securetf.attestation.tsm import tsm_provider
from securetf.errors import AttestationError, UsageError
from tests.attestation.vectors import DCAP, SNP_AT, snp_report, snp_vcek


def fake_mkdir(provider: str, outblob: bytes, generation: str = "1") -> Callable[[Path], None]:
    """What the kernel does on mkdir: the entry appears with its attribute files."""

    def mkdir(path: Path) -> None:
        path.mkdir()
        (path / "provider").write_text(provider + "\n")
        (path / "generation").write_text(generation + "\n")
        (path / "outblob").write_bytes(outblob)
        (path / "inblob").write_bytes(b"")

    return mkdir


def test_tdx_quote_from_configfs_verifies(tmp_path: Path) -> None:
    v = DCAP[1]
    seen: list[Path] = []

    def rmdir(path: Path) -> None:
        seen.append(path)
        assert (path / "inblob").read_bytes() == b"\x05" * 64
        shutil.rmtree(path)

    producer = ConfigfsTsmProducer(
        "tdx", root=tmp_path, mkdir=fake_mkdir("tdx_guest", v.quote), rmdir=rmdir
    )
    evidence = producer.evidence(b"\x05" * 64)
    assert evidence.tee == "tdx"
    assert seen
    assert not any(tmp_path.iterdir())
    claims = verify_dcap(evidence.data, v.collateral, tee="tdx", now=v.at)
    assert claims.measurement.hex() == v.measurement


def test_snp_report_from_configfs_verifies(tmp_path: Path) -> None:
    producer = ConfigfsTsmProducer(
        "sev-snp", root=tmp_path, mkdir=fake_mkdir("sev_guest", snp_report()), rmdir=shutil.rmtree
    )
    evidence = producer.evidence(b"\x05" * 64)
    assert verify_snp(evidence.data, snp_vcek(), now=SNP_AT).tee == "sev-snp"


def test_wrong_provider_is_refused(tmp_path: Path) -> None:
    producer = ConfigfsTsmProducer(
        "tdx", root=tmp_path, mkdir=fake_mkdir("sev_guest", b"x"), rmdir=shutil.rmtree
    )
    with pytest.raises(AttestationError, match="provider is 'sev_guest'"):
        producer.evidence(b"\x05" * 64)
    assert not any(tmp_path.iterdir())


def test_racing_writer_is_detected(tmp_path: Path) -> None:
    class Racy(ConfigfsTsmProducer):
        calls = 0

        def _read_generation(self, entry: Path) -> bytes:
            self.calls += 1
            return str(self.calls).encode()

    producer = Racy("tdx", root=tmp_path, mkdir=fake_mkdir("tdx_guest", b"q"), rmdir=shutil.rmtree)
    with pytest.raises(AttestationError, match="another process wrote"):
        producer.evidence(b"\x05" * 64)


def test_missing_configfs_gives_a_clear_error(tmp_path: Path) -> None:
    producer = ConfigfsTsmProducer("tdx", root=tmp_path / "absent")
    with pytest.raises(AttestationError, match="not a TDX/SNP guest"):
        producer.evidence(b"\x05" * 64)


def test_empty_outblob_and_bad_arguments(tmp_path: Path) -> None:
    producer = ConfigfsTsmProducer(
        "tdx", root=tmp_path, mkdir=fake_mkdir("tdx_guest", b""), rmdir=shutil.rmtree
    )
    with pytest.raises(AttestationError, match="empty evidence"):
        producer.evidence(b"\x05" * 64)
    with pytest.raises(UsageError):
        producer.evidence(b"\x05" * 65)
    with pytest.raises(AttestationError):
        ConfigfsTsmProducer("sgx", root=tmp_path)


def test_provider_probe(tmp_path: Path) -> None:
    mk = fake_mkdir("sev_guest", b"")
    assert tsm_provider(tmp_path, mkdir=mk, rmdir=shutil.rmtree) == "sev-snp"
    with pytest.raises(AttestationError, match="not one securetf knows"):
        tsm_provider(tmp_path, mkdir=fake_mkdir("arm_cca_guest", b""), rmdir=shutil.rmtree)

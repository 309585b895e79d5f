"""The real producers, unchanged, against emulated TEE devices mounted over FUSE.

Mounting needs /dev/fuse, libfuse3 and root (or fusermount3); without them these tests are
skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from securetf.attestation import ConfigfsTsmProducer, GramineProducer, detect_tee, producer_for
from securetf.attestation.emulated.devices import EmulatedGramine, EmulatedTsm
from securetf.attestation.tsm import tsm_provider
from securetf.errors import AttestationError, Error, UsageError
from securetf.shield.fs import FuseUnavailableError, check_fuse


def _fuse_missing() -> str | None:
    try:
        check_fuse()
    except Error as exc:
        return f"emulated devices need FUSE: {exc}"
    return None


needs_fuse = pytest.mark.skipif(_fuse_missing() is not None, reason=str(_fuse_missing()))

RD1, RD2 = b"\x01" * 64, b"\x02" * 64


def quote(report_data: bytes) -> bytes:
    return b"Q" + report_data


def tdx_evidence(report_data: bytes) -> tuple[bytes, bytes]:
    return b"Q" + report_data, b""


def snp_evidence(report_data: bytes) -> tuple[bytes, bytes]:
    return b"R" + report_data, b"CERTS" + report_data[:4]


def mounts() -> set[str]:
    with open("/proc/mounts") as f:
        return {line.split()[1] for line in f}


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Makes empty mount points; afterwards none of them may still be mounted."""
    made: list[Path] = []

    def make(name: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        made.append(path.resolve())
        return path

    yield make
    left = {str(p) for p in made} & mounts()
    assert not left, f"mounts left behind: {left}"


def errno_of(call: Callable[[], object]) -> int:
    """The errno of the OSError that ``call`` raises (fails the test if it raises none)."""
    try:
        call()
    except OSError as exc:
        return exc.errno or 0
    raise AssertionError("expected an OSError")


def test_an_unknown_provider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not tdx"):
        EmulatedTsm(tmp_path, "tdx", tdx_evidence)


# -- Gramine ---------------------------------------------------------------------------------


@needs_fuse
def test_gramine_producer_quotes_through_the_device(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedGramine(mountpoint("attestation"), quote) as dev:
        assert (dev.mountpoint / "attestation_type").read_bytes() == b"dcap"
        producer = GramineProducer(root=dev.mountpoint)
        first = producer.evidence(RD1)
        assert (first.tee, first.data) == ("sgx", b"Q" + RD1)
        second = producer.evidence(RD2)
        assert second.data == b"Q" + RD2
        assert dev.report_data == RD2


@needs_fuse
def test_gramine_pads_short_report_data_and_binds_it(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedGramine(mountpoint("attestation"), quote) as dev:
        (dev.mountpoint / "user_report_data").write_bytes(b"abc")
        assert (dev.mountpoint / "quote").read_bytes() == b"Qabc" + bytes(61)


@needs_fuse
def test_gramine_sealing_key_seals_through_the_device(mountpoint: Callable[[str], Path]) -> None:
    """The CAS's master key sealing (securetf.cas.sealing) through ``keys/_sgx_mrenclave``."""
    from securetf.cas.sealing import GramineSealer
    from securetf.errors import IntegrityError

    with EmulatedGramine(mountpoint("one"), quote, sealing_key=b"k" * 16) as dev:
        assert os.listdir(dev.mountpoint / "keys") == ["_sgx_mrenclave"]
        assert (dev.mountpoint / "keys" / "_sgx_mrenclave").read_bytes() == b"k" * 16
        blob = GramineSealer(dev.mountpoint).seal(b"master")
        assert GramineSealer(dev.mountpoint).unseal(blob) == b"master"
    with (
        EmulatedGramine(mountpoint("two"), quote, sealing_key=b"o" * 16) as other,
        pytest.raises(IntegrityError),
    ):
        GramineSealer(other.mountpoint).unseal(blob)  # another enclave


@needs_fuse
def test_a_failing_quote_maker_fails_the_producer(mountpoint: Callable[[str], Path]) -> None:
    def broken(report_data: bytes) -> bytes:
        raise RuntimeError("no quoting enclave")

    with EmulatedGramine(mountpoint("attestation"), broken) as dev:
        with pytest.raises(AttestationError, match="Gramine attestation failed"):
            GramineProducer(root=dev.mountpoint).evidence(RD1)
        assert errno_of(lambda: (dev.mountpoint / "attestation_type").write_text("none")) in {
            errno.EACCES
        }


# -- configfs-tsm ----------------------------------------------------------------------------


@needs_fuse
def test_tdx_producer_gets_quotes_through_the_device(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedTsm(mountpoint("report"), "tdx_guest", tdx_evidence) as dev:
        producer = ConfigfsTsmProducer("tdx", root=dev.mountpoint)
        first = producer.evidence(RD1)
        assert (first.tee, first.data, first.aux) == ("tdx", b"Q" + RD1, b"")
        assert producer.evidence(RD2).data == b"Q" + RD2
        assert dev.entries == []  # the producer's rmdir removed its entries
        assert os.listdir(dev.mountpoint) == []
        assert dev.evidence_made == 2


@needs_fuse
def test_snp_producer_gets_report_and_auxblob(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedTsm(mountpoint("report"), "sev_guest", snp_evidence) as dev:
        evidence = ConfigfsTsmProducer("sev-snp", root=dev.mountpoint).evidence(RD1)
        assert (evidence.tee, evidence.data) == ("sev-snp", b"R" + RD1)
        assert evidence.aux == b"CERTS\1\1\1\1"
        assert tsm_provider(dev.mountpoint) == "sev-snp"


@needs_fuse
def test_generation_counts_writes_and_evidence_is_made_once_per_generation(
    mountpoint: Callable[[str], Path],
) -> None:
    with EmulatedTsm(mountpoint("report"), "sev_guest", snp_evidence) as dev:
        entry = dev.mountpoint / "e1"
        os.mkdir(entry)
        assert sorted(os.listdir(entry)) == [
            "auxblob",
            "generation",
            "inblob",
            "outblob",
            "provider",
        ]
        assert (entry / "provider").read_text() == "sev_guest\n"
        assert (entry / "generation").read_text() == "0\n"
        (entry / "inblob").write_bytes(b"short")
        assert (entry / "generation").read_text() == "1\n"
        outblob = (entry / "outblob").read_bytes()
        assert outblob == b"Rshort" + bytes(59)  # SNP pads the report data with zeros
        assert (entry / "outblob").read_bytes() == outblob
        assert (entry / "auxblob").read_bytes() == b"CERTSshor"
        assert dev.evidence_made == 1  # outblob and auxblob of one generation: one call
        (entry / "inblob").write_bytes(RD2)
        assert (entry / "generation").read_text() == "2\n"
        assert (entry / "outblob").read_bytes() == b"R" + RD2
        assert dev.evidence_made == 2
        os.rmdir(entry)
        assert not entry.exists()
        assert dev.entries == []


@needs_fuse
def test_tdx_entries_follow_the_kernel_rules(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedTsm(mountpoint("report"), "tdx_guest", tdx_evidence) as dev:
        entry = dev.mountpoint / "e1"
        os.mkdir(entry)
        assert errno_of(lambda: os.mkdir(entry)) == errno.EEXIST
        assert errno_of(lambda: os.mkdir(entry / "sub")) == errno.EPERM
        assert not (entry / "auxblob").exists()  # only sev_guest has one
        (entry / "inblob").write_bytes(b"short")
        assert errno_of(lambda: (entry / "outblob").read_bytes()) == errno.EINVAL  # TDX: 64 only
        assert errno_of(lambda: (entry / "inblob").write_bytes(bytes(65))) == errno.EFBIG
        assert errno_of(lambda: (entry / "outblob").write_bytes(RD1)) == errno.EACCES
        assert errno_of(lambda: (entry / "inblob").read_bytes()) == errno.EACCES
        os.rmdir(entry)
        assert errno_of(lambda: os.rmdir(entry)) == errno.ENOENT


@needs_fuse
def test_the_producer_refuses_a_device_of_the_other_tee(mountpoint: Callable[[str], Path]) -> None:
    with EmulatedTsm(mountpoint("report"), "sev_guest", snp_evidence) as dev:
        with pytest.raises(AttestationError, match="provider is 'sev_guest'"):
            ConfigfsTsmProducer("tdx", root=dev.mountpoint).evidence(RD1)
        assert dev.entries == []  # the refused attempt still removed its entry


@needs_fuse
def test_a_failing_evidence_maker_fails_the_producer(mountpoint: Callable[[str], Path]) -> None:
    def broken(report_data: bytes) -> tuple[bytes, bytes]:
        raise RuntimeError("no quoting service")

    with (
        EmulatedTsm(mountpoint("report"), "tdx_guest", broken) as dev,
        pytest.raises(AttestationError, match="cannot read"),
    ):
        ConfigfsTsmProducer("tdx", root=dev.mountpoint).evidence(RD1)


# -- detection -------------------------------------------------------------------------------


@needs_fuse
def test_detection_finds_the_emulated_devices(
    mountpoint: Callable[[str], Path], tmp_path: Path
) -> None:
    absent = tmp_path / "absent"
    with (
        EmulatedGramine(mountpoint("attestation"), quote) as sgx,
        EmulatedTsm(mountpoint("report"), "tdx_guest", tdx_evidence) as tdx,
    ):
        assert detect_tee(tsm_root=tdx.mountpoint, gramine_root=absent) == "tdx"
        assert detect_tee(tsm_root=absent, gramine_root=sgx.mountpoint) == "sgx"
        producer = producer_for("tdx", tsm_root=tdx.mountpoint, gramine_root=absent)
        assert producer.evidence(RD1).data == b"Q" + RD1
        producer = producer_for("sgx", tsm_root=absent, gramine_root=sgx.mountpoint)
        assert producer.evidence(RD2).data == b"Q" + RD2
        with pytest.raises(AttestationError, match=r"asked for sev-snp evidence, but .* tdx"):
            producer_for("sev-snp", tsm_root=tdx.mountpoint, gramine_root=absent)


# -- mounting --------------------------------------------------------------------------------


@needs_fuse
def test_unmount_leaves_no_mount_even_on_error(mountpoint: Callable[[str], Path]) -> None:
    path = mountpoint("report")
    dev = EmulatedTsm(path, "tdx_guest", tdx_evidence)
    seen: list[bool] = []

    def busy_then_fail() -> None:
        with dev:
            seen.append(str(path.resolve()) in mounts() and dev.mounted)
            os.mkdir(path / "held")
            held.append(open(path / "held" / "provider", "rb"))  # noqa: SIM115 (kept busy)
            raise RuntimeError("boom")

    held: list[BinaryIO] = []
    with pytest.raises(RuntimeError, match="boom"):
        busy_then_fail()
    with contextlib.suppress(OSError):  # the connection was aborted under it (ENOTCONN)
        held[0].close()
    assert seen == [True]
    assert str(path.resolve()) not in mounts()
    assert not dev.mounted
    assert os.listdir(path) == []


@needs_fuse
def test_mounting_keeps_the_working_directory(mountpoint: Callable[[str], Path]) -> None:
    # libfuse's fuse_main moves the whole process to "/"; the device puts it back.
    before = os.getcwd()
    with EmulatedGramine(mountpoint("attestation"), quote):
        assert os.getcwd() == before
    assert os.getcwd() == before


@needs_fuse
def test_a_mount_point_must_be_an_empty_directory(mountpoint: Callable[[str], Path]) -> None:
    path = mountpoint("busy")
    (path / "file").write_bytes(b"")
    with pytest.raises(FuseUnavailableError, match="empty directory"):
        EmulatedGramine(path, quote).mount()
    dev = EmulatedGramine(mountpoint("attestation"), quote)
    with dev, pytest.raises(UsageError, match="mounted already"):
        dev.mount()

"""The master key sealed to the CAS's TEE: it opens only with the key that sealed it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from securetf.cas.master_key import MASTER_KEY_FILE, SEALED_KEY_FILE, MasterKey
from securetf.cas.sealing import GRAMINE_SEALING_KEY, GramineSealer, SimSealer, sealer_for
from securetf.errors import IntegrityError, UsageError

INFO = b"test"


def same(a: MasterKey, b: MasterKey) -> bool:
    return a.derive(salt=b"", info=INFO) == b.derive(salt=b"", info=INFO)


def gramine_root(tmp_path: Path, key: bytes) -> Path:
    """A directory with Gramine's /dev/attestation layout: keys/_sgx_mrenclave."""
    (tmp_path / GRAMINE_SEALING_KEY).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / GRAMINE_SEALING_KEY).write_bytes(key)
    return tmp_path


def test_the_sim_sealer_opens_only_with_the_platform_key_that_sealed(tmp_path: Path) -> None:
    here, there = SimSealer(tmp_path / "a"), SimSealer(tmp_path / "b")
    blob = here.seal(b"k" * 32)
    assert b"k" * 32 not in blob
    assert here.unseal(blob) == b"k" * 32
    with pytest.raises(IntegrityError):
        there.unseal(blob)  # another machine: another platform key
    for i in (0, len(blob) // 2, len(blob) - 1):
        with pytest.raises(IntegrityError):
            here.unseal(blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1 :])


def test_the_gramine_sealer_uses_the_mrenclave_key(tmp_path: Path) -> None:
    enclave = GramineSealer(gramine_root(tmp_path / "one", os.urandom(16)))
    other = GramineSealer(gramine_root(tmp_path / "two", os.urandom(16)))
    blob = enclave.seal(b"s" * 32)
    assert enclave.unseal(blob) == b"s" * 32
    with pytest.raises(IntegrityError):
        other.unseal(blob)  # another MRENCLAVE or CPU: another key
    with pytest.raises(IntegrityError):
        SimSealer(tmp_path / "home").unseal(blob)  # a blob names the TEE that sealed it


def test_the_gramine_sealer_outside_an_enclave_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="inside a Gramine SGX enclave"):
        GramineSealer(tmp_path).seal(b"x")
    with pytest.raises(UsageError, match="holds 8 bytes, not 16"):
        GramineSealer(gramine_root(tmp_path, bytes(8))).seal(b"x")


def test_sealer_for_each_tee(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURETF_GRAMINE_ROOT", str(gramine_root(tmp_path, os.urandom(16))))
    sgx = sealer_for("sgx")
    assert isinstance(sgx, GramineSealer)
    assert sgx.unseal(sgx.seal(b"x")) == b"x"
    assert isinstance(sealer_for("sim", home=tmp_path / "h"), SimSealer)
    assert sealer_for("tdx") is None  # the CVM's encrypted disk: docs/cas.md
    assert sealer_for("sev-snp") is None
    with pytest.raises(UsageError, match="unknown TEE"):
        sealer_for("tz")


def test_the_cas_keeps_its_master_key_sealed_and_no_plain_copy(tmp_path: Path) -> None:
    sealer = SimSealer(tmp_path / "home")
    data = tmp_path / "cas"
    first = MasterKey.load_or_create_sealed(data, sealer)
    assert sorted(p.name for p in data.iterdir()) == [SEALED_KEY_FILE]
    assert stat.S_IMODE((data / SEALED_KEY_FILE).stat().st_mode) == 0o600
    assert same(first, MasterKey.load_or_create_sealed(data, sealer))
    assert same(first, MasterKey.load_existing(data, sealer))


def test_a_plain_master_key_is_sealed_and_removed(tmp_path: Path) -> None:
    """A data directory from before sealing keeps its key, now sealed."""
    data = tmp_path / "cas"
    old = MasterKey.load_or_create(data)
    sealed = MasterKey.load_or_create_sealed(data, SimSealer(tmp_path / "home"))
    assert same(old, sealed)
    assert not (data / MASTER_KEY_FILE).exists()


def test_a_master_key_sealed_elsewhere_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """Attack and accident alike: the data directory copied to a machine with another TEE
    key does not open, and the error names recovery."""
    data = tmp_path / "cas"
    MasterKey.load_or_create_sealed(data, SimSealer(tmp_path / "a"))
    with pytest.raises(UsageError, match="securetf cas recover"):
        MasterKey.load_or_create_sealed(data, SimSealer(tmp_path / "b"))
    assert (data / SEALED_KEY_FILE).exists()  # nothing replaced


def test_no_master_key_is_not_a_data_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no CAS master key"):
        MasterKey.load_existing(tmp_path, SimSealer(tmp_path / "home"))

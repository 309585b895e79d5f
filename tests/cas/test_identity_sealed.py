"""The storage admin reads the CAS's data directory: the CAS's identity keys (TLS, audit,
log) are not there in the clear. With the TLS key a copy of the data directory would run a
CAS that clients pinned to that key accept without attesting it again; with the log key it
would sign a forked log. Each key is sealed under the master key, which is sealed to the
TEE (docs/cas.md, "The master key")."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from pathlib import Path

import pytest

from securetf._http.server import tls_context
from securetf.cas.backup import recover, write_backup
from securetf.cas.identity import IDENTITY_KEYS, SEALED_SUFFIX, read_identity_key
from securetf.cas.master_key import MasterKey
from securetf.cas.recovery import public_key_text
from securetf.cas.sealing import sealer_for
from securetf.cas.server import ServeOptions, build
from securetf.crypto import Certificate, SigningKey
from securetf.crypto.sealed_box import BoxKey
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SECURETF_HOME", str(tmp_path / "home"))
    return tmp_path / "cas"


def _build(data: Path) -> None:
    build(ServeOptions(data_dir=data))


def _master(data: Path) -> MasterKey:
    return MasterKey.load_existing(data, sealer_for("sim"))


def _files(data: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}


def test_the_data_directory_holds_no_identity_key_in_the_clear(data: Path) -> None:
    _build(data)
    master = _master(data)
    tls = EcKey.from_pem(read_identity_key(data, "tls.key", master))
    secrets = [read_identity_key(data, name, master) for name in IDENTITY_KEYS]
    raw_tls = tls.to_pem()
    for path, content in _files(data).items():
        assert b"PRIVATE KEY" not in content, path
        for secret in [*secrets, raw_tls]:
            assert secret not in content, path
    for name in IDENTITY_KEYS:
        assert not (data / "identity" / name).exists()
        assert (data / "identity" / f"{name}{SEALED_SUFFIX}").stat().st_mode & 0o077 == 0
    # The certificate served is the sealed key's.
    cert = Certificate.load((data / "identity" / "tls.crt").read_bytes())
    assert cert.public_key_der() == tls.public_der()


def test_a_changed_sealed_key_stops_the_cas_and_says_what_to_do(data: Path) -> None:
    _build(data)
    sealed = data / "identity" / f"audit.key{SEALED_SUFFIX}"
    raw = bytearray(sealed.read_bytes())
    raw[-1] ^= 1
    sealed.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match=r"audit\.key.*does not open.*securetf cas recover"):
        _build(data)


def test_keys_of_an_older_data_directory_are_sealed_and_the_plain_files_removed(
    data: Path,
) -> None:
    """A data directory from before sealing keeps its identity: the same keys, sealed."""
    _build(data)
    master = _master(data)
    ident = data / "identity"
    before = {name: read_identity_key(data, name, master) for name in IDENTITY_KEYS}
    for name, pem in before.items():
        (ident / name).write_bytes(pem)
        (ident / name).chmod(0o600)
        (ident / f"{name}{SEALED_SUFFIX}").unlink()
    _build(data)
    for name, pem in before.items():
        assert not (ident / name).exists()
        assert read_identity_key(data, name, master) == pem
    audit = SigningKey.from_pem(before["audit.key"])
    assert (
        audit.verify_key().raw()
        == SigningKey.from_pem(read_identity_key(data, "audit.key", master)).verify_key().raw()
    )


def test_a_plain_key_planted_beside_the_sealed_one_is_never_used(data: Path) -> None:
    """Whoever writes the data directory cannot choose the CAS's key: a plain key file
    beside a sealed one that differs stops the start instead of replacing it."""
    _build(data)
    planted = data / "identity" / "tls.key"
    planted.write_bytes(EcKey.generate().to_pem())
    planted.chmod(0o600)
    with pytest.raises(UsageError, match=r"tls\.key.*differs from the sealed"):
        _build(data)


def test_a_backup_from_before_sealing_recovers_and_its_keys_are_sealed_at_start(
    data: Path, tmp_path: Path
) -> None:
    owner = BoxKey()
    keys = tmp_path / "keys.json"
    public = public_key_text(owner.public())
    keys.write_text(
        json.dumps({"threshold": 1, "owners": [{"name": "alice", "public_key": public}]})
    )
    build(ServeOptions(data_dir=data, recovery_keys=keys))
    master = _master(data)
    ident = data / "identity"
    before = {name: read_identity_key(data, name, master) for name in IDENTITY_KEYS}
    for name, pem in before.items():  # as an older securetf kept them
        (ident / name).write_bytes(pem)
        (ident / name).chmod(0o600)
        (ident / f"{name}{SEALED_SUFFIX}").unlink()
    backup = write_backup(data, tmp_path / "cas.backup", master=master)
    share = backup.shares.open_share(owner)
    new = tmp_path / "new-cas"
    recovered = recover(backup, [share], new, sealer=sealer_for("sim"))
    _build(new)
    for name, pem in before.items():
        assert not (new / "identity" / name).exists()
        assert read_identity_key(new, name, recovered) == pem


def test_without_memfd_the_tls_key_reaches_openssl_encrypted(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a TEE runtime has no memfd_create, the key file OpenSSL reads holds the key
    encrypted under a password only this process has, and is gone once read."""
    _build(data)
    pem = read_identity_key(data, "tls.key", _master(data))
    seen: list[bytes] = []
    real_load = ssl.SSLContext.load_cert_chain

    def load(self: ssl.SSLContext, certfile: str, keyfile: str, password: object = None) -> None:
        seen.append(Path(keyfile).read_bytes())
        real_load(self, certfile, keyfile, password)  # type: ignore[arg-type]

    def no_memfd(name: str, flags: int = 0) -> int:
        raise OSError(38, "memfd_create is not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", load)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    ctx = tls_context(data / "identity" / "tls.crt", pem)
    assert ctx is not None
    assert seen
    assert all(b"ENCRYPTED PRIVATE KEY" in s and pem not in s for s in seen)
    assert list((tmp_path / "tmp").iterdir()) == []

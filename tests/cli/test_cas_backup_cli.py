"""``securetf cas backup`` / ``recovery-share`` / ``recover`` against a real CAS process and
its SQLite files: what a backup refuses to do (docs/cas.md, "Backup and recovery")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from securetf._fsutil import write_private_file
from securetf.cas.identity import read_identity_key
from securetf.cas.master_key import MasterKey
from securetf.cas.recovery import RecoverySet
from securetf.cas.sealing import SimSealer
from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, policy_yaml
from tests.ports import free_port


class Lost:
    """A CAS (policy ``cancer`` with its imported dataset key) backed up, then lost; alice
    and bob opened their shares of the backup (2 of alice, bob, carol recover it)."""

    def __init__(self, tmp: Path) -> None:
        home = tmp / "home"
        home.mkdir()
        self.tmp = tmp
        self.cas = cas = CasProcess(data=tmp / "cas", home=home, port=free_port())
        owners = []
        for name in ("alice", "bob", "carol"):
            public = cas.cli("cas", "recovery-keygen", tmp / f"{name}.rkey").stdout.strip()
            owners.append({"name": name, "public_key": public})
        (tmp / "keys.json").write_text(json.dumps({"threshold": 2, "owners": owners}))
        cas.extra_args = ("--recovery-keys", str(tmp / "keys.json"))
        cas.start()
        try:
            self._populate(cas, tmp)
        finally:
            cas.stop()
        shutil.rmtree(cas.data)
        for name in ("alice", "bob"):
            cas.cli(
                "cas", "recovery-share", self.backup, "--key", tmp / f"{name}.rkey",
                "--out", tmp / f"{name}.share",
            )  # fmt: skip

    def _populate(self, cas: CasProcess, tmp: Path) -> None:
        """Attest, apply ``cancer``, read the log and the model key, back up."""
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        policy_owners = Owners()
        write_private_file(tmp / "owner.key", policy_owners.alice.to_pem())
        write_private_file(tmp / "dataset.key", DATASET_KEY)
        (tmp / "policy.yaml").write_bytes(policy_yaml(policy_owners))
        cas.cli(
            "policy", "apply", "--yes", tmp / "policy.yaml", "--cas", cas.url,
            "--key", tmp / "owner.key", "--secret", f"dataset-key={tmp / 'dataset.key'}",
        )  # fmt: skip
        self.model_key = self.get_model_key(tmp / "model-before.key")
        out = cas.cli("log", "entries", "--cas", cas.url, "--count", "256", "--json").stdout
        self.logged = [e["entry"] for e in json.loads(out)["entries"]]
        self.backup = tmp / "cas.backup"
        cas.cli("cas", "backup", "--data-dir", cas.data, "--out", self.backup)
        master = MasterKey.load_existing(cas.data, SimSealer(cas.home))
        self.tls_key = read_identity_key(cas.data, "tls.key", master)

    def get_model_key(self, out: Path) -> bytes:
        """The generated model-key as its owner fetches it (``securetf secret get``)."""
        self.cas.cli(
            "secret", "get", "model-key", "--policy", "cancer", "--cas", self.cas.url,
            "--key", self.tmp / "owner.key", "--out", out,
        )  # fmt: skip
        return out.read_bytes()

    def recover(self, backup: Path, *shares: str, ok: bool = True) -> str:
        args: list[str | Path] = ["cas", "recover", backup, "--data-dir", self.cas.data]
        for name in shares:
            args += ["--share", self.tmp / f"{name}.share"]
        done = self.cas.cli(*args, ok=ok)
        if not ok:
            assert done.returncode == 3, done.stderr
            assert not self.cas.data.exists()  # nothing written
        return done.stderr


@pytest.fixture(scope="module")
def lost(tmp_path_factory: pytest.TempPathFactory) -> Lost:
    return Lost(tmp_path_factory.mktemp("lost-cas"))


def test_who_holds_recovery_shares_is_in_the_transparency_log(lost: Lost) -> None:
    """Owners see in the log which recovery set can rebuild the master key."""
    (identity,) = [e for e in lost.logged if e["type"] == "identity"]
    assert identity["recovery"] == RecoverySet.load(lost.tmp / "keys.json").digest()


def test_a_tampered_backup_is_refused(lost: Lost, tmp_path: Path) -> None:
    raw = lost.backup.read_bytes()
    header_end = raw.index(b"}}", len(b"securetf-cas-backup-v1\n") + 4) + 2
    for where in (40, header_end - 10, header_end + 5, len(raw) - 1):
        bad = tmp_path / f"bad-{where}"
        bad.write_bytes(raw[:where] + bytes([raw[where] ^ 1]) + raw[where + 1 :])
        err = lost.recover(bad, "alice", "bob", ok=False)
        assert "nothing restored" in err or "nothing recovered" in err, err
    truncated = tmp_path / "truncated"
    truncated.write_bytes(raw[: len(raw) // 2])
    assert "nothing restored" in lost.recover(truncated, "alice", "bob", ok=False)


def test_a_backup_is_useless_without_the_shares(lost: Lost) -> None:
    raw = lost.backup.read_bytes()
    assert DATASET_KEY not in raw
    assert DATASET_KEY.hex().encode() not in raw
    assert lost.tls_key not in raw
    assert b"PRIVATE KEY" not in raw
    err = lost.recover(lost.backup, "alice", ok=False)
    assert "1 distinct owners' shares given, 2 of 3 needed: nothing recovered" in err


def test_recovery_refuses_a_data_directory_in_use(lost: Lost) -> None:
    lost.cas.data.mkdir()
    (lost.cas.data / "cas.db").write_bytes(b"something")
    try:
        done = lost.cas.cli(
            "cas", "recover", lost.backup, "--data-dir", lost.cas.data,
            "--share", lost.tmp / "alice.share", "--share", lost.tmp / "bob.share", ok=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert "is not empty" in done.stderr
        assert (lost.cas.data / "cas.db").read_bytes() == b"something"
    finally:
        shutil.rmtree(lost.cas.data)


def test_recovered_then_a_copy_on_another_machine_does_not_start(lost: Lost) -> None:
    """k shares recover the CAS (its generated secret is served again, the same); its data
    directory copied to a machine with another TEE key does not start."""
    lost.recover(lost.backup, "alice", "bob")
    try:
        lost.cas.start()
        assert lost.get_model_key(lost.tmp / "model-after.key") == lost.model_key
        lost.cas.stop()
        other_home = lost.tmp / "other-machine"
        other_home.mkdir()
        other = CasProcess(data=lost.cas.data, home=other_home, port=free_port())
        with pytest.raises(RuntimeError, match="securetf cas recover"):
            other.start()
    finally:
        lost.cas.stop()
        shutil.rmtree(lost.cas.data)


def test_a_backup_needs_recovery_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cas = CasProcess(data=tmp_path / "cas", home=home, port=free_port())
    cas.start()
    cas.stop()
    done = cas.cli("cas", "backup", "--data-dir", cas.data, "--out", tmp_path / "b", ok=False)
    assert done.returncode == 2
    assert "--recovery-keys" in done.stderr
    assert not (tmp_path / "b").exists()

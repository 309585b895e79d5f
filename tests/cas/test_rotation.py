"""``securetf cas rotate-key`` against real CAS processes: pinned clients follow a rotation
the pinned key endorsed and the CAS attests, and refuse any other certificate."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf._fsutil import write_private_file
from securetf.cas.identity import read_identity_key
from securetf.cas.master_key import MasterKey
from securetf.cas.sealing import SimSealer
from securetf.client.pins import cas_file_stem
from securetf.crypto import Certificate, sha256
from securetf.crypto.x509ca import EcKey
from securetf.policy import canonical_json
from securetf.protocol.rotation import RotationLink
from tests.cas.server_support import CasProcess, attested_cas
from tests.cas.support import DATASET_KEY, Owners, policy_yaml


def pin_of(cas: CasProcess) -> dict[str, str]:
    path = cas.home / "cas-pins" / f"{cas_file_stem(cas.url)}.json"
    pin: dict[str, str] = json.loads(path.read_text())
    return pin


def history(cas: CasProcess, ok: bool = True) -> str:
    done = cas.cli("policy", "history", "cancer", "--cas", cas.url, ok=ok)
    if not ok:
        assert done.returncode == 5, done.stderr
    return done.stderr


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[CasProcess]:
    """A CAS with the ``cancer`` policy, attested (its certificate pinned)."""
    with attested_cas(tmp_path) as cas:
        owners = Owners()
        write_private_file(tmp_path / "alice.key", owners.alice.to_pem())
        write_private_file(tmp_path / "dataset.key", DATASET_KEY)
        (tmp_path / "policy.yaml").write_bytes(policy_yaml(owners))
        cas.cli(
            "policy", "apply", "--yes", tmp_path / "policy.yaml", "--cas", cas.url,
            "--key", tmp_path / "alice.key", "--secret", f"dataset-key={tmp_path / 'dataset.key'}",
        )  # fmt: skip
        yield cas


def test_pinned_clients_follow_a_rotation(cas: CasProcess) -> None:
    before = pin_of(cas)
    cas.stop()
    cas.cli("cas", "rotate-key", "--data-dir", cas.data)
    cas.cli("cas", "rotate-key", "--data-dir", cas.data)  # twice while the client is away
    cas.start()
    history(cas)  # no re-pinning by hand
    after = pin_of(cas)
    assert after["certificate_pem"] != before["certificate_pem"]
    assert after["certificate_pem"] == (cas.data / "identity" / "tls.crt").read_text()
    assert after["audit_public_key"] == before["audit_public_key"]
    # The transparency log records the new identity (its TLS key).
    out = cas.cli("log", "entries", "--cas", cas.url, "--count", "256", "--json").stdout
    entries = [e["entry"] for e in json.loads(out)["entries"]]
    identities = [e for e in entries if e["type"] == "identity"]
    new_key = Certificate.load(after["certificate_pem"].encode()).public_key_der()
    assert identities[-1]["tls_public_key_sha256"] == sha256(new_key).hex()
    assert len(identities) == 2


def test_a_certificate_the_pinned_key_did_not_endorse_is_refused(
    cas: CasProcess, tmp_path: Path
) -> None:
    """Attack: another CAS (its own keys, genuine evidence of the same code) takes the
    pinned address; then it announces a rotation of its own, then a forged link that names
    the pinned key. The client refuses each and keeps its pin."""
    before = pin_of(cas)
    cas.stop()
    other = CasProcess(data=tmp_path / "other", home=cas.home, port=cas.port)
    other.start()
    try:
        assert "the pinned key never endorsed" in history(other, ok=False)
        other.stop()
        other.cli("cas", "rotate-key", "--data-dir", other.data)  # its own chain
        other.start()
        assert "the pinned key never endorsed" in history(other, ok=False)
        other.stop()
        # A link claiming the pinned key retired for the other CAS's key, signed by the
        # other CAS's key (the pinned key's owner never signed it).
        ident = other.data / "identity"
        pinned = Certificate.load(before["certificate_pem"].encode()).public_key_der()
        master = MasterKey.load_existing(other.data, SimSealer(other.home))
        attacker = EcKey.from_pem(read_identity_key(other.data, "tls.key", master))
        nxt = sha256(attacker.public_der()).hex()
        link = RotationLink(pinned, nxt, 1, attacker.sign(RotationLink.message(pinned, nxt, 1)))
        (ident / "tls.rotations").write_bytes(canonical_json([link.to_json()]))
        (ident / "tls.crt").unlink()
        other.start()
        assert "is not signed by the key it retires" in history(other, ok=False)
    finally:
        other.stop()
        shutil.rmtree(other.data, ignore_errors=True)
    assert pin_of(cas) == before

"""Witnesses of the CAS's log, as real processes with real keys (#14 item 2): each cosigns
only a checkpoint that extends the last one it cosigned; the CAS gives clients only a
checkpoint that k of its witnesses cosigned; a rolled-back log loses its witnesses."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from securetf.attestation.sim_key import KEY_FILE, load_or_create_platform_key
from securetf.client import CasClient, load_pin
from securetf.crypto import random_bytes
from securetf.errors import IntegrityError
from securetf.log import CosignatureSigner, signature_line
from tests.cas.server_support import EXE, CasProcess
from tests.cas.support import DATASET, Owners, policy_yaml
from tests.ports import free_port

pytestmark = pytest.mark.slow


def _run(home: Path, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SECURETF_HOME": str(home)}
    proc = subprocess.run(
        [*EXE, *map(str, args)], env=env, capture_output=True, text=True, check=False
    )
    if ok and proc.returncode != 0:
        raise AssertionError(f"securetf {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


class Witness:
    """A witness: its home (pin, state), its key, and its process while it runs."""

    def __init__(self, base: Path, name: str, sim_key: Path) -> None:
        self.home = base / name
        self.home.mkdir()
        shutil.copy2(sim_key, self.home / KEY_FILE)
        self.key = base / f"{name}.key"
        self.vkey = _run(self.home, "log", "witness-key", "--name", name, "--out", self.key)
        self.vkey_text = self.vkey.stdout.strip()
        self.proc: subprocess.Popen[str] | None = None
        self.out: Path | None = None

    def attest(self, url: str) -> None:
        _run(self.home, "cas", "attest", "--cas", url, "--allow-sim", "--witness")

    def start(self, url: str) -> None:
        args = [*EXE, "log", "witness", "--log", url, "--key", str(self.key), "--every", "0.2"]
        env = {**os.environ, "SECURETF_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        # A file, not a pipe: nobody drains a pipe while the witness runs.
        self.out = self.home / "witness.out"
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, text=True)

    def once(self, url: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self.home, "log", "witness", "--log", url, "--key", self.key, ok=ok)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[CasProcess, list[Witness]]]:
    home = tmp_path / "home"
    home.mkdir()
    # The sim platform key first, so that the CAS and every witness share it.
    load_or_create_platform_key(home)
    sim_key = home / KEY_FILE
    witnesses = [Witness(tmp_path, f"w{i}", sim_key) for i in (1, 2)]
    args: tuple[str, ...] = ()
    for w in witnesses:
        args += ("--log-witness", w.vkey_text)
    args += ("--log-witness-threshold", "2")
    cas = CasProcess(data=tmp_path / "cas", home=home, port=free_port(), extra_args=args)
    cas.start()
    try:
        for w in witnesses:
            w.attest(cas.url)
            w.start(cas.url)
        # The owner's attest waits for a checkpoint both witnesses cosigned.
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        yield cas, witnesses
    finally:
        for w in witnesses:
            w.stop()
        cas.stop()


def _apply(cas: CasProcess, owners: Owners, name: str) -> None:
    yaml = policy_yaml(owners, threshold=1).replace(
        b"\nname: cancer\n", f"\nname: {name}\n".encode()
    )
    with CasClient(load_pin(cas.url, cas.home), home=cas.home) as client:
        client.apply_policy(yaml, owners.alice, DATASET)
        client.policy(name)  # proven once both witnesses cosigned a checkpoint holding it


def test_clients_get_checkpoints_cosigned_by_k_witnesses(
    setup: tuple[CasProcess, list[Witness]],
) -> None:
    cas, witnesses = setup
    pin = load_pin(cas.url, cas.home)
    assert pin.log_witness_threshold == 2
    assert sorted(pin.log_witnesses) == sorted(w.vkey_text for w in witnesses)
    _apply(cas, Owners(), "first")
    shown = json.loads(cas.cli("log", "checkpoint", "--cas", cas.url, "--json").stdout)
    for w in witnesses:
        assert f"\u2014 {w.home.name} " in shown["note"]
    verified = cas.cli("log", "verify", "--cas", cas.url)
    assert "log ok" in verified.stdout


def test_the_cas_keeps_only_cosignatures_by_its_witnesses(
    setup: tuple[CasProcess, list[Witness]],
) -> None:
    cas, witnesses = setup
    pin = load_pin(cas.url, cas.home)
    ctx = ssl.create_default_context(cadata=pin.certificate_pem)
    with httpx.Client(base_url=cas.url + "/v1/log/", verify=ctx) as http:
        note = http.get("witness/checkpoint").content
        text = note[: note.index(b"\n\n") + 1]
        size = int(text.split(b"\n")[1])
        # A stranger's key, even under a witness's name: refused.
        stranger = CosignatureSigner.load(
            CosignatureSigner.skey("w1", random_bytes(32)), clock=time.time
        )
        line = signature_line(stranger, text).decode()
        answer = http.post("witness/cosignature", json={"size": size, "signature": line})
        assert answer.status_code == 400, answer.text
        # A witness's signature of another tree size: refused.
        w1 = CosignatureSigner.load(witnesses[0].key.read_text(), clock=time.time)
        line = signature_line(w1, text).decode()
        answer = http.post("witness/cosignature", json={"size": size + 1, "signature": line})
        assert answer.status_code in (400, 404), answer.text


def test_witnesses_refuse_a_rolled_back_log_and_clients_get_nothing_newer(
    setup: tuple[CasProcess, list[Witness]], tmp_path: Path
) -> None:
    cas, witnesses = setup
    owners = Owners()
    backup = tmp_path / "backup"
    cas.stop()
    backup.mkdir()
    for f in cas.data.glob("cas.db*"):
        shutil.copy2(f, backup / f.name)
    cas.start()
    _apply(cas, owners, "later")  # both witnesses cosign the longer log
    for w in witnesses:
        w.stop()
    cas.stop()
    for f in cas.data.glob("cas.db*"):
        f.unlink()
    for f in backup.glob("cas.db*"):
        shutil.copy2(f, cas.data / f.name)
    cas.start()
    owner = cas.cli("log", "verify", "--cas", cas.url, ok=False)
    assert owner.returncode == IntegrityError.exit_code  # the owner saw more
    for w in witnesses:
        refused = w.once(cas.url, ok=False)
        assert refused.returncode == IntegrityError.exit_code, refused.stderr
        assert "rolled back" in refused.stderr

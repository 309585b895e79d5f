"""``securetf volume register`` as an owner runs it, against a real CAS process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf._fsutil import write_private_file
from securetf.errors import IntegrityError, UsageError
from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, policy_yaml
from tests.ports import free_port


class Owner:
    """Alice, an owner of the policy ``cancer`` (tests/cas/support.py), applied at a CAS
    she attested; its dataset is sealed under its imported key."""

    def __init__(self, cas: CasProcess, tmp: Path) -> None:
        self.cas, self.tmp, owners = cas, tmp, Owners()
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        write_private_file(tmp / "alice.key", owners.alice.to_pem())
        write_private_file(key := tmp / "dataset.key", DATASET_KEY)
        (tmp / "policy.yaml").write_bytes(policy_yaml(owners))
        (tmp / "plain").mkdir()
        (tmp / "plain" / "table.csv").write_text("id,label\n1,0\n")
        cas.cli("volume", "seal", tmp / "plain", tmp / "dataset", "--key-file", key)
        apply: list[str | Path] = ["policy", "apply", "--yes", tmp / "policy.yaml"]
        cas.cli(
            *apply, "--cas", cas.url, "--key", tmp / "alice.key", "--secret", f"dataset-key={key}"
        )

    def register(self, volume: str, *args: str | Path, ok: bool = True) -> tuple[int, str]:
        done = self.cas.cli(
            "volume",
            "register",
            *args,
            "--policy",
            "cancer",
            "--volume",
            volume,
            "--cas",
            self.cas.url,
            "--key",
            self.tmp / "alice.key",
            ok=ok,
        )
        return done.returncode, done.stdout + done.stderr

    def put(self, vol: Path, key: Path, text: str) -> None:
        (self.tmp / "new.csv").write_text(text)
        self.cas.cli("volume", "put", vol, self.tmp / "new.csv", "table.csv", "--key-file", key)

    def tag_of(self, vol: Path, key: Path) -> str:
        report = self.cas.cli("volume", "verify", vol, "--key-file", key, "--json").stdout
        tag: str = json.loads(report)["tag"]
        return tag


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    home = tmp_path / "home"
    home.mkdir()
    cas = CasProcess(data=tmp_path / "cas", home=home, port=free_port())
    cas.start()
    try:
        yield Owner(cas, tmp_path)
    finally:
        cas.stop()


def test_register_reads_the_state_from_the_volume_and_only_moves_forward(owner: Owner) -> None:
    tmp, dataset, key = owner.tmp, owner.tmp / "dataset", owner.tmp / "dataset.key"
    _, out = owner.register("dataset", dataset, "--key-file", key)
    assert "registered volume dataset of policy cancer: version 1 (none was recorded)" in out
    first = owner.tag_of(dataset, key)
    assert f"tag: {first}" in out
    shutil.copytree(dataset, tmp / "old-dataset")
    owner.put(dataset, key, "id,label\n1,1\n")
    _, out = owner.register("dataset", dataset, "--key-file", key)
    assert f"version 2 (was {first})" in out
    code, out = owner.register("dataset", tmp / "old-dataset", "--key-file", key, ok=False)
    assert code == IntegrityError.exit_code
    assert "backwards" in out
    # The dataset's key stays with its owners: the CAS does not export it.
    code, out = owner.register("dataset", dataset, ok=False)
    assert code == UsageError.exit_code
    assert "give it with --key-file" in out


def test_register_with_an_exported_key_or_a_given_tag(owner: Owner) -> None:
    """The model volume's key is exported to owners: no key file is needed."""
    tmp, model = owner.tmp, owner.tmp / "model"
    owner.cas.cli(
        "secret", "get", "model-key", "--policy", "cancer", "--cas", owner.cas.url,
        "--key", tmp / "alice.key", "--out", tmp / "model.key",
    )  # fmt: skip
    owner.cas.cli("volume", "seal", tmp / "plain", model, "--key-file", tmp / "model.key")
    _, out = owner.register("model", model)
    assert f"version 1 (none was recorded)\ntag: {owner.tag_of(model, tmp / 'model.key')}" in out
    owner.put(model, tmp / "model.key", "weights\n")
    tag = owner.tag_of(model, tmp / "model.key")
    _, out = owner.register("model", "--tag", tag, "--version", "2")
    assert "version 2 (was " in out


def test_usage_errors_exit_2_and_say_what_to_give(owner: Owner) -> None:
    tag, vol = "sha256:" + "0" * 64, owner.tmp / "dataset"
    cases: list[tuple[str, list[str | Path], str]] = [
        ("dataset", ["--tag", tag], "both --tag and --version"),
        ("dataset", [vol, "--tag", tag, "--version", "2"], "both --tag and --version"),
        ("dataset", [], "name the sealed volume"),
        ("nope", ["--tag", tag, "--version", "1"], "policy 'cancer' has no volume 'nope'"),
    ]
    for volume, args, says in cases:
        code, out = owner.register(volume, *args, ok=False)
        assert code == UsageError.exit_code, out
        assert says in out

"""A new owner's first commands against a real CAS process: ``init`` writes a policy that
``policy apply`` takes as written; an edited policy is applied without touching version or
predecessor, after showing what changes and asking; ``owner pubkey`` prints the key again."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.errors import PolicyError, UsageError
from securetf.policy import Policy
from tests.cas.server_support import EXE, CasProcess, attested_cas

TRAIN = "import os\nprint('training on', os.environ['DATA_DIR'])\n"


class Owner:
    """Alice, with a key, an app directory and a volume key, at an attested CAS."""

    def __init__(self, cas: CasProcess, tmp: Path) -> None:
        self.cas, self.tmp = cas, tmp
        self.key, self.policy = tmp / "alice.key", tmp / "policy.yaml"
        self.public = cas.cli("owner", "keygen", self.key).stdout.strip()
        (app := tmp / "my-app").mkdir()
        (app / "train.py").write_text(TRAIN)
        self.app = app
        cas.cli("volume", "keygen", tmp / "data.key")

    def apply(self, *more: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = ["policy", "apply", self.policy, "--cas", self.cas.url]
        args += ["--key", self.key]
        return self.cas.cli(*args, "--secret", f"data-key={self.tmp / 'data.key'}", *more, ok=ok)

    def in_force(self) -> Policy:
        shown = self.cas.cli("policy", "show", "my-app", "--cas", self.cas.url, "--key", self.key)
        doc = json.loads(
            self.cas.cli(
                "policy", "show", "my-app", "--cas", self.cas.url, "--key", self.key, "--json"
            ).stdout
        )
        assert doc["policy_yaml"] in shown.stdout
        return Policy.from_yaml(doc["policy_yaml"].encode())


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasProcess]:
    with attested_cas(tmp_path_factory.mktemp("cas")) as proc:
        yield proc


@pytest.fixture
def owner(cas: CasProcess, tmp_path: Path) -> Owner:
    return Owner(cas, tmp_path)


def test_init_writes_a_policy_that_apply_takes_as_written(owner: Owner) -> None:
    cas = owner.cas
    done = cas.cli("init", owner.app, "--owner", owner.key, "--out", owner.policy)
    measure: list[str | Path] = ["measure", "--policy", owner.policy, "--service", "train"]
    measured = cas.cli(*measure, "--app", owner.app)
    text = owner.policy.read_text()
    assert f'measurement: "{measured.stdout.strip()}"' in text
    assert owner.public in text
    assert "allow: [sim]" in text
    assert "protects NOTHING" in text
    assert "version" not in [line.split(":")[0] for line in text.splitlines()]
    # The next commands, in order, with this policy's name and files.
    out = done.stdout
    assert f"measurement {measured.stdout.strip()}" in out
    for command in (
        f"securetf policy apply {owner.policy} --cas https://127.0.0.1:8081",
        "securetf volume seal DATA_DIR sealed/data --key-file data.key",
        "securetf run --cas https://127.0.0.1:8081 --policy my-app --service train",
    ):
        assert command in out
    applied = owner.apply("--yes")
    assert "new policy my-app, version 1:" in applied.stdout
    assert "+ service train added" in applied.stdout
    assert "policy my-app version 1 is in force" in applied.stdout
    policy = owner.in_force()
    assert policy.version == 1
    assert policy.services["train"].command == ("python", "train.py")
    # init never overwrites.
    again = cas.cli("init", owner.app, "--owner", owner.key, "--out", owner.policy, ok=False)
    assert again.returncode == UsageError.exit_code
    assert "remove it or write elsewhere with --out FILE" in again.stderr

    # An edit: another measurement, a new secret. Version and predecessor stay out of the
    # file; apply fills them in from the version in force.
    v1_hash = json.loads(cas.cli("policy", "show", "my-app", "--cas", cas.url, "--json").stdout)[
        "hash"
    ]
    (owner.app / "train.py").write_text(TRAIN + "print('v2')\n")
    new = cas.cli(*measure, "--app", owner.app)
    edited = text.replace(measured.stdout.strip(), new.stdout.strip())
    edited = edited.replace("secrets:\n", "secrets:\n  token: {kind: random, bytes: 16}\n")
    owner.policy.write_text(edited)
    # No terminal, no --yes: nothing is applied, and the message says what to pass.
    refused = owner.apply(ok=False)
    assert refused.returncode == UsageError.exit_code
    assert "pass --yes" in refused.stderr
    assert owner.in_force().version == 1
    applied = owner.apply("--yes")
    out = applied.stdout
    assert "policy my-app version 2, replacing version 1:" in out
    assert "~ service train changed" in out
    assert f"~ services.train.measurement: {measured.stdout.strip()} -> {new.stdout.strip()}" in out
    assert "+ secret token added" in out
    assert "version 2 is in force" in out
    policy = owner.in_force()
    assert (policy.version, policy.predecessor) == (2, v1_hash)
    assert owner.policy.read_text() == edited  # the owner's file is left as written

    # A file that names a version already in force is refused with the fix.
    owner.policy.write_text(edited.replace("\nname:", "\nversion: 2\nname:", 1))
    stale = owner.apply("--yes", ok=False)
    assert stale.returncode == PolicyError.exit_code
    assert "version 2 of policy 'my-app' is in force" in stale.stderr
    assert "remove the 'version' and 'predecessor' lines" in stale.stderr


def _on_a_terminal(args: list[str | Path], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with a terminal as its standard input, answering ``answer``."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*EXE, *map(str, args)], env=env, stdin=follower, stdout=subprocess.PIPE, text=True
        )
        os.write(leader, answer)
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    return proc.returncode, out


def test_apply_asks_on_a_terminal(owner: Owner) -> None:
    cas = owner.cas
    cas.cli("init", owner.app, "--owner", owner.key, "--out", owner.policy)
    owner.policy.write_text(owner.policy.read_text().replace("name: my-app", "name: asked"))
    args: list[str | Path] = ["policy", "apply", owner.policy, "--cas", cas.url]
    args += ["--key", owner.key, "--secret", f"data-key={owner.tmp / 'data.key'}"]
    code, out = _on_a_terminal(args, cas.env(), b"n\n")
    assert code == 1, out
    assert "apply it?" in out
    assert "not applied" in out
    missing = cas.cli("policy", "show", "asked", "--cas", cas.url, ok=False)
    assert missing.returncode == UsageError.exit_code
    code, out = _on_a_terminal(args, cas.env(), b"y\n")
    assert code == 0, out
    assert "policy asked version 1 is in force" in out


def test_owner_pubkey_prints_the_key_keygen_printed(owner: Owner) -> None:
    again = owner.cas.cli("owner", "pubkey", owner.key).stdout.strip()
    assert again == owner.public
    missing = owner.cas.cli("owner", "pubkey", owner.tmp / "nope.key", ok=False)
    assert missing.returncode == UsageError.exit_code

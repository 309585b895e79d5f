"""Shared material for the policy tests: keys, the example policies, a policy builder."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from securetf.crypto import SigningKey, sha256
from securetf.policy import Policy
from tests.shared import REPO, shared_file

DOCS_EXAMPLE = REPO / "docs" / "examples" / "policy.yaml"
NOW = 1_750_000_000


@cache
def key(name: str) -> SigningKey:
    """One stable key per name for the whole test run."""
    return SigningKey.generate()


def public(name: str) -> str:
    return key(name).verify_key().to_text()


def digest(label: str) -> str:
    return "sha256:" + sha256(label.encode()).hex()


def design_example_yaml() -> str:
    """The design's example with its truncated placeholders made real: the two owner keys,
    and the two measurements (``sha256:0b6e...`` is not a digest)."""
    text = shared_file("design", "policy-example.yaml").read_text()
    for name in ("alice", "bob"):
        text = re.sub(
            rf'(name: {name},\s*public_key: )"ed25519:[^"]*"', rf'\g<1>"{public(name)}"', text
        )
    return re.sub(r'"sha256:[0-9a-f]*\.\.\."', lambda m: f'"{digest(m.group(0))}"', text)


def policy_yaml(
    *,
    name: str = "demo",
    version: int = 1,
    predecessor: str | None = None,
    owners: tuple[str, ...] = ("alice", "bob", "carol"),
    threshold: int = 2,
    extra_service: str = "",
    tee: str = "{allow: [sim]}",
) -> str:
    """A small valid policy, as YAML text, with knobs for the governance tests."""
    owner_lines = "\n".join(f"    - {{name: {o}, public_key: '{public(o)}'}}" for o in owners)
    return f"""\
name: {name}
version: {version}
predecessor: {predecessor or "null"}
governance:
  owners:
{owner_lines}
  update_threshold: {threshold}
tee: {tee}
secrets:
  data-key: {{kind: volume-key, source: imported}}
  token: {{kind: random, bytes: 16}}
volumes:
  data: {{key: data-key}}
services:
  app:
    measurement: "{digest("app")}"
    command: [python, app.py]
    mounts: [{{volume: data, path: /data}}]
    environment: {{TOKEN: "{{{{ secrets.token }}}}"}}
{extra_service}"""


def make_policy(**kwargs: Any) -> Policy:
    return Policy.from_yaml(policy_yaml(**kwargs).encode())

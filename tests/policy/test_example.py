"""The design's example and the documented example are valid policies, key for key."""

from __future__ import annotations

import yaml

from securetf.policy import Policy, X509Secret, policy_hash
from tests.policy._support import DOCS_EXAMPLE, design_example_yaml
from tests.shared import REPO


def _paths(value: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every mapping key path in a YAML document (list items share their list's path)."""
    found: set[tuple[str, ...]] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add((*prefix, str(key)))
            found |= _paths(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for item in value:
            found |= _paths(item, prefix)
    return found


def _kept(path: tuple[str, ...], document: object) -> bool:
    """Whether the key path exists in the validated policy's dump."""
    nodes = [document]
    for key in path:
        nodes = [n for node in nodes for n in (node if isinstance(node, list) else [node])]
        nodes = [node[key] for node in nodes if isinstance(node, dict) and key in node]
        if not nodes:
            return False
    return True


def _check_every_key_accepted(text: str) -> Policy:
    policy = Policy.from_yaml(text.encode())
    written = _paths(yaml.safe_load(text))
    dumped = policy.model_dump(mode="json")
    missing = sorted(p for p in written if not _kept(p, dumped))
    assert missing == []
    return policy


def test_design_example_parses_with_every_key() -> None:
    policy = _check_every_key_accepted(design_example_yaml())
    assert policy.name == "breast-cancer-training"
    assert policy.governance.update_threshold == 2
    assert set(policy.tee.allow) == {"sim", "tdx", "sev-snp", "sgx"}
    assert policy.services["train"].instances == 2
    assert policy.services["serve"].network.public == (8500,)
    cert = policy.secrets["worker-cert"]
    assert isinstance(cert, X509Secret)
    assert cert.usage == ("client", "server")


def _shape(text: str) -> set[tuple[str, ...]]:
    """Key paths with user-chosen names (of secrets, volumes, services, files) as '*'."""
    named = {"secrets", "volumes", "services"}
    shape = set()
    for path in _paths(yaml.safe_load(text)):
        parts = list(path)
        if parts[0] in named and len(parts) > 1:
            parts[1] = "*"
        if len(parts) > 3 and parts[2] in {"environment", "files"}:
            parts[3] = "*"
        shape.add(tuple(parts))
    return shape


def test_documented_example_shows_every_key_of_the_design_example() -> None:
    assert _shape(design_example_yaml()) - _shape(DOCS_EXAMPLE.read_text()) == set()


def test_documented_example_is_valid_and_in_the_reference() -> None:
    text = DOCS_EXAMPLE.read_text()
    policy = _check_every_key_accepted(text)
    assert policy.services["train"].code is not None
    assert len(policy.services["train"].measurement) == 2
    assert policy_hash(policy).startswith("sha256:")
    reference = (REPO / "docs" / "policy.md").read_text()
    assert text.strip() in reference, "docs/policy.md must include docs/examples/policy.yaml"

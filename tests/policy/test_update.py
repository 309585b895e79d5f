"""The next version as an owner edits it: version and predecessor filled in without
touching the owner's text, and what the update changes, line by line."""

from __future__ import annotations

import pytest

from securetf.errors import PolicyError
from securetf.policy import Policy, fill_version, policy_changes, policy_hash, version_fields
from tests.cas.support import Owners, policy_yaml

PRED = "sha256:" + "ab" * 32


def _without_version(yaml: bytes) -> bytes:
    lines = yaml.decode().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(("version:", "predecessor:"))]
    return "".join(kept).encode()


def test_fill_writes_the_missing_lines_and_keeps_the_owners_text() -> None:
    owners = Owners()
    edited = b"# my policy\n" + _without_version(policy_yaml(owners))
    assert version_fields(edited).has_version is False
    filled = fill_version(edited, version=2, predecessor=PRED)
    assert filled.startswith(b"# my policy\n")
    assert _without_version(filled) == edited
    assert b"version: 2  # filled in by securetf policy apply\n" in filled
    policy = Policy.from_yaml(filled)
    assert (policy.version, policy.predecessor) == (2, PRED)
    # The same meaning as the owner writing the lines by hand.
    by_hand = policy_yaml(owners, version=2, predecessor=PRED)
    assert policy_hash(policy) == policy_hash(Policy.from_yaml(by_hand))


def test_fill_leaves_a_complete_file_alone_and_fills_version_one() -> None:
    complete = policy_yaml(Owners())
    assert fill_version(complete, version=7, predecessor=PRED) == complete
    first = fill_version(_without_version(complete), version=1, predecessor=None)
    policy = Policy.from_yaml(first)
    assert (policy.version, policy.predecessor) == (1, None)


def test_fill_needs_a_top_level_name_line() -> None:
    flow = b"{name: x, tee: {allow: [sim]}}\n"
    with pytest.raises(PolicyError, match="add 'version: 2'"):
        fill_version(flow, version=2, predecessor=PRED)


def test_changes_name_measurements_secrets_owners_and_services() -> None:
    owners = Owners()
    old = Policy.from_yaml(policy_yaml(owners))
    new_yaml = policy_yaml(owners, version=2, predecessor=PRED, measurement=b"\x01" * 32)
    new_yaml = new_yaml.replace(b"update_threshold: 2", b"update_threshold: 1")
    new = Policy.from_yaml(new_yaml)
    lines = policy_changes(old, new)
    assert "~ update_threshold: 2 -> 1" in lines
    assert "~ service train changed" in lines
    old_m, new_m = old.services["train"].measurement[0], new.services["train"].measurement[0]
    assert f"  ~ services.train.measurement: {old_m} -> {new_m}" in lines
    assert policy_changes(old, old) == []
    # Version and predecessor are not changes of meaning.
    assert not any("version" in line or "predecessor" in line for line in lines)


def test_a_new_policy_lists_everything_it_adds() -> None:
    new = Policy.from_yaml(policy_yaml(Owners()))
    lines = policy_changes(None, new)
    assert "+ owner alice added" in lines
    assert "+ secret dataset-key added" in lines
    assert "+ service train added" in lines
    assert any(line.startswith("+ tee.allow") for line in lines)
    assert all(line.lstrip()[0] in "+~-" for line in lines)

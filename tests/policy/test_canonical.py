"""Canonical form and hash: layout never matters, meaning always does."""

from __future__ import annotations

import json
import random
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.policy import Policy, policy_canonical_json, policy_hash, policy_json_schema_text
from tests.policy._support import DOCS_EXAMPLE, make_policy, policy_yaml
from tests.shared import REPO

EXAMPLE_TEXT = DOCS_EXAMPLE.read_text()
EXAMPLE = Policy.from_yaml(EXAMPLE_TEXT.encode())
SET_LIKE = {
    "allow",
    "tolerate",
    "ignore_advisories",
    "usage",
    "measurement",
    "peers",
    "listen",
    "egress",
    "public",
}


def _shuffled(value: Any, rng: random.Random, key: str = "") -> Any:
    """The same document with mapping order and set-like list order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng, str(k)) for k, v in items}
    if isinstance(value, list):
        items = [_shuffled(v, rng) for v in value]
        if key in SET_LIKE:
            rng.shuffle(items)
        return items
    return value


def test_canonical_json_is_sorted_compact_utf8_with_defaults() -> None:
    data = policy_canonical_json(make_policy())
    assert (
        data
        == json.dumps(
            json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    decoded = json.loads(data)
    assert decoded["services"]["app"]["instances"] == 1  # defaults are filled in
    assert decoded["services"]["app"]["network"]["egress"] == []
    assert policy_hash(make_policy()).startswith("sha256:")
    assert len(policy_hash(make_policy())) == len("sha256:") + 64


def test_non_ascii_is_utf8_not_escaped() -> None:
    policy = Policy.from_yaml(
        policy_yaml().replace("[python, app.py]", "[python, größe.py]").encode()
    )
    assert "größe".encode() in policy_canonical_json(policy)


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans(), st.integers(1, 8))
def test_layout_order_and_comments_do_not_change_the_hash(
    rng: random.Random, flow: bool, indent: int
) -> None:
    document = _shuffled(yaml.safe_load(EXAMPLE_TEXT), rng)
    text = "# a comment\n" + yaml.safe_dump(
        document,
        sort_keys=False,
        default_flow_style=flow,
        indent=max(indent, 2),
        allow_unicode=rng.random() < 0.5,
    )
    assert policy_hash(Policy.from_yaml(text.encode())) == policy_hash(EXAMPLE)


SEMANTIC_EDITS = [
    ("version: 1 ", "version: 2 "),
    ("update_threshold: 2", "update_threshold: 1"),
    ("[sim, tdx, sev-snp, sgx]", "[tdx, sev-snp, sgx]"),
    ("tolerate: [sw-hardening-needed]", "tolerate: []"),
    ("bytes: 32", "bytes: 33"),
    ("export_to_owners: true", "export_to_owners: false"),
    ("instances: 2", "instances: 3"),
    ('"5"]', '"6"]'),
    ("path: /model, mode: ro", "path: /model, mode: rw"),  # serve's: train's holds the output
    ("sealed: model/logs/train.log", "sealed: model/logs/train-2.log"),
    ('TF_CPP_MIN_LOG_LEVEL: "1"', 'TF_CPP_MIN_LOG_LEVEL: "2"'),
    ("listen: [2222]", "listen: [2223]"),
    ("public: [8500]", "public: [8501]"),
    ("rollback: none", "rollback: protected"),
    ("valid_days: 7", "valid_days: 8"),
    ("name: carol", "name: carl"),
]


def test_every_semantic_edit_changes_the_hash() -> None:
    seen = {policy_hash(EXAMPLE)}
    for old, new in SEMANTIC_EDITS:
        assert old in EXAMPLE_TEXT, old
        text = EXAMPLE_TEXT.replace(old, new, 1)
        if "version: 2" in text:
            text = text.replace("predecessor: null", f"predecessor: {policy_hash(EXAMPLE)}")
        digest = policy_hash(Policy.from_yaml(text.encode()))
        assert digest not in seen, (old, new)
        seen.add(digest)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    document: dict[str, Any] = EXAMPLE.model_dump(mode="json")
    train = document["services"]["train"]
    train["instances"] = draw(st.integers(1, 4))
    train["command"] = draw(
        st.lists(
            st.text(min_size=1, max_size=6).filter(lambda t: "{{" not in t and "\x00" not in t),
            min_size=1,
            max_size=3,
        )
    )
    train["environment"]["EXTRA"] = draw(st.sampled_from(["", "a", "b", "{{ secrets.api-token }}"]))
    train["network"]["listen"] = draw(st.lists(st.integers(1, 5), unique=True, max_size=3))
    document["tee"]["allow"] = draw(
        st.lists(st.sampled_from(["sim", "tdx", "sgx"]), unique=True, min_size=1)
    )
    return Policy.model_validate(document)


@settings(max_examples=200, deadline=None)
@given(policies(), policies())
def test_hash_equal_exactly_when_meaning_equal(a: Policy, b: Policy) -> None:
    assert (policy_hash(a) == policy_hash(b)) == (a.model_dump() == b.model_dump())


def test_exported_schema_file_is_current() -> None:
    # Regenerate with: .venv/bin/python -c "from securetf.policy import policy_json_schema_text
    # as s; open('docs/policy.schema.json', 'w').write(s())"
    assert (REPO / "docs" / "policy.schema.json").read_text() == policy_json_schema_text()


def test_schema_accepts_the_documented_shape() -> None:
    schema = json.loads(policy_json_schema_text())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "version", "governance", "tee", "services"}
    measurement = schema["$defs"]["Service"]["properties"]["measurement"]
    assert {"type": "string"}.items() <= next(
        s for s in measurement["anyOf"] if s.get("type") == "string"
    ).items()


def test_keys_added_later_keep_older_policies_hashes() -> None:
    """path, tmpfs and user stay out of the canonical form unless given (tmpfs and user
    unless they differ from the defaults), so a policy stored before they existed hashes
    as it did."""
    plain = make_policy()
    for service in json.loads(policy_canonical_json(plain))["services"].values():
        assert "path" not in service
        assert "tmpfs" not in service
        assert "user" not in service
    # The default user written out is the same policy as none written; another is not.
    path = "    path: /opt/venv/bin"
    default_user = EXAMPLE_TEXT.replace(path, "    user: {uid: 65532}\n" + path, 1)
    other_user = EXAMPLE_TEXT.replace(path, "    user: {uid: 1000}\n" + path, 1)
    assert default_user != EXAMPLE_TEXT
    assert policy_hash(Policy.from_yaml(default_user.encode())) == policy_hash(EXAMPLE)
    assert policy_hash(Policy.from_yaml(other_user.encode())) != policy_hash(EXAMPLE)
    train = json.loads(policy_canonical_json(Policy.from_yaml(other_user.encode())))
    assert train["services"]["train"]["user"] == {"uid": 1000, "gid": 65532}
    # The example gives both: they are in its canonical form.
    train = json.loads(policy_canonical_json(EXAMPLE))["services"]["train"]
    assert train["path"].startswith("/")
    assert train["tmpfs"]["tmp"] == "2g"
    # The default sizes written out are the same policy as none written.
    text = EXAMPLE_TEXT.replace("tmpfs: {tmp: 2g}", "tmpfs: {tmp: 256m, home: 256m}", 1)
    without = EXAMPLE_TEXT.replace("tmpfs: {tmp: 2g}", "tmpfs: {}", 1)
    assert text != EXAMPLE_TEXT
    assert policy_hash(Policy.from_yaml(text.encode())) == policy_hash(
        Policy.from_yaml(without.encode())
    )
    assert (
        "tmpfs"
        not in json.loads(policy_canonical_json(Policy.from_yaml(text.encode())))["services"][
            "train"
        ]
    )


#: A policy written before ``output`` existed, and its hash then (a known answer).
PINNED = """\
name: pinned
version: 1
governance:
  owners:
    - name: alice
      public_key: "ed25519:MCowBQYDK2VwAyEAiRhHj53RKFdTDFItrNjUnmbHQk5CFvOQUgfWUnl3AC0="
  update_threshold: 1
tee: {allow: [sim]}
secrets:
  model-key: {kind: volume-key, source: generated}
volumes:
  model: {key: model-key}
services:
  train:
    measurement: "sha256:467eb98e1866708e03cd9ab9f8a7f4e53fc92738ea0700ac00af93c4074a870f"
    command: [python, train.py]
    mounts: [{volume: model, path: /model, mode: rw}]
"""
PINNED_HASH = "sha256:019e16fff491e4ddae513e2ff91febf7559f95f5a0276206569f023f348dd606"


def test_output_stays_out_of_the_canonical_form_at_its_default() -> None:
    """A policy stored before ``output`` existed hashes as it did; ``output: operator``
    written out is the same policy; ``none`` and ``sealed`` are others."""
    command = "    command: [python, train.py]\n"
    assert policy_hash(Policy.from_yaml(PINNED.encode())) == PINNED_HASH
    written = PINNED.replace(command, command + "    output: operator\n")
    assert written != PINNED
    assert policy_hash(Policy.from_yaml(written.encode())) == PINNED_HASH
    hashes = {PINNED_HASH}
    for form, dumped in (
        ("none", "none"),
        ("{sealed: model/logs/train.log}", {"sealed": "model/logs/train.log"}),
    ):
        other = Policy.from_yaml(PINNED.replace(command, f"{command}    output: {form}\n").encode())
        hashes.add(policy_hash(other))
        assert json.loads(policy_canonical_json(other))["services"]["train"]["output"] == dumped
    assert len(hashes) == 3
    for service in json.loads(policy_canonical_json(make_policy()))["services"].values():
        assert "output" not in service

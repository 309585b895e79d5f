"""The YAML front door: strict, bounded, and only ever failing with PolicyError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securetf.errors import PolicyError
from securetf.policy import Policy, limits
from tests.policy._support import DOCS_EXAMPLE, policy_yaml

EXAMPLE = DOCS_EXAMPLE.read_bytes()


def _reject(data: bytes, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        Policy.from_yaml(data)


def test_duplicate_key_is_rejected_not_last_wins() -> None:
    # With "last one wins", a reviewer could read allow: [tdx] and the CAS use [sim].
    text = policy_yaml().replace("tee: {allow: [sim]}", "tee:\n  allow: [tdx]\n  allow: [sim]")
    _reject(text.encode(), "duplicate key 'allow' at line 12")
    _reject(b"name: a\nname: b\n", "duplicate key 'name'")


def test_oversize_input_is_rejected_before_parsing() -> None:
    data = policy_yaml().encode() + b"#" * limits.MAX_POLICY_BYTES
    _reject(data, f"limit is {limits.MAX_POLICY_BYTES} bytes")


def test_too_many_aliases_are_rejected() -> None:
    many = ", ".join(["*a"] * (limits.MAX_YAML_ALIASES + 1))
    _reject(f"a: &a x\nb: [{many}]\n".encode(), "YAML aliases")


def test_alias_expansion_is_bounded_even_under_the_alias_limit() -> None:
    # 7 levels of 8 aliases would be 8**7 values once expanded, from only 56 aliases.
    lines = ["a0: &a0 [" + ", ".join(["x"] * 8) + "]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]" for i in range(1, 8)]
    _reject("\n".join(lines).encode(), "expands to more than")


def test_recursive_alias_does_not_hang() -> None:
    _reject(b"a: &a [*a]\n", "expands to more than|not valid YAML")


def test_deep_nesting_and_merge_keys_are_rejected() -> None:
    _reject(b"a: " + b"[" * 200 + b"]" * 200, "nests deeper")
    _reject(b"base: &b {x: 1}\nother:\n  <<: *b\n", "merge keys")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "holds nothing"),
        (b"- name: x\n", "holds a list"),
        (b"just text\n", "holds a str"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a: [1\n", "not valid YAML"),
        (b"a: !!python/object/apply:os.system [ls]\n", "not valid YAML"),
        (b"a: 1\n---\nb: 2\n", "not valid YAML"),
        (b"when: 2024-02-30\n", "cannot read"),
        (b"1: x\n", "not a name"),
    ],
)
def test_malformed_documents(data: bytes, fragment: str) -> None:
    _reject(data, fragment)


def _only_policy_errors(data: bytes) -> None:
    with contextlib.suppress(PolicyError):
        Policy.from_yaml(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_policy_error(data: bytes) -> None:
    _only_policy_errors(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_example_only_raises_policy_error(data: st.DataObject) -> None:
    mutated = bytearray(EXAMPLE)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        operation = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if operation == "flip":
            mutated[position] = data.draw(st.integers(0, 255))
        elif operation == "delete":
            del mutated[position : position + data.draw(st.integers(1, 20))]
        else:
            snippet = data.draw(
                st.sampled_from([b"{{", b"&a ", b"*a", b": ", b"\n- ", b"'", b"!!binary ", b"\x00"])
            )
            mutated[position:position] = snippet
        if not mutated:
            break
    _only_policy_errors(bytes(mutated))


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "version",
                "predecessor",
                "governance",
                "tee",
                "secrets",
                "volumes",
                "services",
                "x",
            ]
        ),
        yaml_values,
    )
)
def test_wrongly_shaped_documents_only_raise_policy_error(document: dict[str, object]) -> None:
    import yaml

    _only_policy_errors(yaml.safe_dump(document).encode())

"""The only way policy YAML becomes Python data: safe, strict and bounded.

PyYAML's safe loader plus what it lacks for untrusted input: a duplicate key is an error
(not "the last one wins", which would let a reviewer read one value and the CAS use
another), merge keys are refused, and aliases, nesting and expanded size are bounded.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from securetf.errors import PolicyError
from securetf.policy import limits

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _at(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.MAX_YAML_ALIASES:
                raise PolicyError(
                    f"the policy uses more than {limits.MAX_YAML_ALIASES} YAML aliases (*name); "
                    "write the values out"
                )
        self._depth += 1
        try:
            if self._depth > limits.MAX_YAML_DEPTH:
                raise PolicyError(f"the policy nests deeper than {limits.MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):  # PyYAML's own check reports other nodes
            seen: set[object] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    raise PolicyError(
                        f"YAML merge keys ('<<') are not supported in a policy ({_at(key_node)}); "
                        "write the keys out"
                    )
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool | None):
                    raise PolicyError(f"a key must be a plain value ({_at(key_node)})")
                if key in seen:
                    raise PolicyError(
                        f"duplicate key {key!r} at {_at(key_node)}: each key may appear only "
                        "once in a mapping"
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_size(document: object) -> None:
    """Count values with aliases expanded, as the validator will see them."""
    count = 0
    stack = [document]
    while stack:
        value = stack.pop()
        count += 1
        if count > limits.MAX_YAML_NODES:
            raise PolicyError(
                f"the policy expands to more than {limits.MAX_YAML_NODES} values "
                "(too many aliases of large values?)"
            )
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend(value)


def _parse(text: str) -> object:
    loader = _StrictLoader(text)  # reads ahead: it raises on unprintable characters too
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_document(data: bytes) -> dict[str, object]:
    """Parse one policy YAML document into a mapping with string keys; raise PolicyError."""
    if len(data) > limits.MAX_POLICY_BYTES:
        raise PolicyError(
            f"the policy is {len(data)} bytes; the limit is {limits.MAX_POLICY_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"the policy is not UTF-8 text (byte {exc.start})") from None
    try:
        document = _parse(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"the policy is not valid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # Scalars that PyYAML resolves but cannot build, such as the date 2024-02-30.
        raise PolicyError(f"the policy holds a value YAML cannot read: {exc}") from None
    if not isinstance(document, dict):
        got = "nothing" if document is None else f"a {type(document).__name__}"
        raise PolicyError(
            f"a policy is a YAML mapping (name: ..., version: ..., ...); this file holds {got}"
        )
    _check_size(document)
    for key in document:
        if not isinstance(key, str):
            raise PolicyError(f"top-level key {key!r} is not a name")
    return document

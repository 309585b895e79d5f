"""The canonical form of a policy and its hash.

Canonical JSON: the validated policy with every default filled in and set-like lists
sorted, serialized with sorted keys, no whitespace, UTF-8 (not ASCII escapes). Two files
that differ only in comments, key order, quoting, layout or the order of set-like lists
mean the same policy and hash the same; any change of meaning changes the hash (one
exception: ``transparency: full``, the default, is left out).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from securetf.crypto import sha256

if TYPE_CHECKING:  # canonical_json alone (the runtime's measurement) needs no model
    from securetf.policy._model import Policy

HASH_PREFIX = "sha256:"


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes that get hashed or signed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def policy_canonical_json(policy: Policy) -> bytes:
    """The canonical bytes of ``policy`` (what :func:`policy_hash` hashes).

    ``transparency`` is left out while it is ``full``, its default: policies written
    before it existed keep their hash, and owners' signatures of them stay valid.
    """
    value = policy.model_dump(mode="json")
    if value.get("transparency") == "full":
        del value["transparency"]
    return canonical_json(value)


def policy_hash(policy: Policy) -> str:
    """``sha256:<64 hex>`` over the canonical JSON: what ``predecessor`` and requests name."""
    return HASH_PREFIX + sha256(policy_canonical_json(policy)).hex()

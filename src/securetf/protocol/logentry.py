"""What a log entry of a ``transparency: hashes`` policy publishes, for the CAS that writes
it and the clients that compare it with an answer.

Such a policy's entries carry ``"transparency": "hashes"``, and each of their name fields
(:data:`HASHED_FIELDS`) holds ``sha256:<hex>`` of the name instead of the name; its policy
entries publish the policy's hash and version only (no owners, threshold or reference
values). A client that knows the name checks the entry exactly as well; the public sees
that the policy changed, not what it says. A short name can be guessed from its hash: a
policy that must hide its name uses one nobody would guess.
"""

from __future__ import annotations

from typing import Literal

from securetf.crypto import sha256

__all__ = ["HASHED_FIELDS", "HASHES", "Transparency", "hashed", "published"]

Transparency = Literal["full", "hashes"]
HASHES: Transparency = "hashes"

#: The fields, by entry type, that a ``hashes`` entry holds as hashes.
HASHED_FIELDS: dict[str, tuple[str, ...]] = {
    "policy": ("name",),
    "certificate": ("policy", "service"),
    "tag": ("policy", "volume"),
}


def hashed(value: str) -> str:
    """``sha256:<hex>`` of a name, as a ``hashes`` entry holds it."""
    return "sha256:" + sha256(value.encode()).hex()


def published(entry_type: str, field: str, value: object, transparency: str) -> object:
    """``value`` of ``field`` as an entry of ``entry_type`` publishes it."""
    if transparency == HASHES and field in HASHED_FIELDS.get(entry_type, ()):
        return hashed(str(value))
    return value

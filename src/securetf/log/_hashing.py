"""RFC 9162 section 2.1.1 hashing: domain-separated leaves and interior nodes.

The 0x00 and 0x01 prefixes keep a leaf from ever hashing like a node, so a proof cannot
present an interior node as an entry (second-preimage resistance of the tree).
"""

from __future__ import annotations

from securetf.crypto import sha256

__all__ = ["EMPTY_ROOT", "leaf_hash", "node_hash"]

_LEAF = b"\x00"
_NODE = b"\x01"

#: MTH({}) = HASH(): the root of the empty tree.
EMPTY_ROOT = sha256(b"")


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = HASH(0x00 || d(0))."""
    return sha256(_LEAF, entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right)."""
    return sha256(_NODE, left, right)

"""Proof verification, exactly as RFC 9162 sections 2.1.3.2 and 2.1.4.2 write it.

Pure functions over bytes: they return nothing and raise on every failure, naming what
did not match. Hashes are SHA-256 (32 bytes); the proof lists are in the RFC's order
(from the leaf or the older tree's edge upwards).
"""

from __future__ import annotations

from collections.abc import Sequence

from securetf.crypto import constant_time_equal
from securetf.log._errors import ForkError, LogRollbackError, ProofError
from securetf.log._hashing import node_hash
from securetf.log._limits import HASH_SIZE

__all__ = ["verify_consistency", "verify_inclusion"]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Return if ``proof`` shows leaf ``index`` with ``leaf_hash`` in the tree ``root`` of
    ``size`` leaves; raise :class:`ProofError` otherwise."""
    _check_hash("the leaf hash", leaf_hash)
    _check_hash("the root", root)
    _check_proof(proof)
    # 1. The index must lie inside the tree.
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} entries")
    # 2.-3.
    fn, sn, r = index, size - 1, leaf_hash
    # 4.
    for p in proof:
        # 4a. A path longer than the tree is high cannot be right.
        if sn == 0:
            raise ProofError(f"the inclusion proof of entry {index} is too long for {size}")
        # 4b.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn, sn = fn >> 1, sn >> 1
    # 5.
    if sn != 0:
        raise ProofError(f"the inclusion proof of entry {index} is too short for {size}")
    if not constant_time_equal(r, root):
        raise ProofError(
            f"the inclusion proof of entry {index} does not lead to the root of the tree of {size}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Return if ``proof`` shows that the tree ``root1`` of ``size1`` leaves is a prefix of
    the tree ``root2`` of ``size2``; raise otherwise.

    RFC 9162 defines a proof for 0 < size1 < size2 (2.1.4.2). Equal sizes need an empty
    proof and equal roots (SUBPROOF(m, D[m], true) = {}, 2.1.4.1); different roots are a
    :class:`ForkError`. A smaller second tree is a :class:`LogRollbackError`. An empty
    first tree has no proof: nothing was seen, so there is nothing to check, and a caller
    that passes one would take a vacuous check for a real one.
    """
    _check_proof(proof)
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes cannot be negative ({size1}, {size2})")
    if size2 < size1:
        raise LogRollbackError(f"the tree of {size2} entries is older than the one of {size1}")
    if size1 == 0:
        raise ProofError("there is no consistency proof from the empty tree")
    if size1 == size2:
        if proof:
            raise ProofError(f"two trees of {size1} entries need an empty consistency proof")
        if not constant_time_equal(root1, root2):
            raise ForkError(f"two trees of {size1} entries have different roots")
        return
    _check_hash("the first root", root1)
    _check_hash("the second root", root2)
    # 1.
    if not proof:
        raise ProofError(f"the consistency proof from {size1} to {size2} entries is empty")
    # 2. The old root is a node of the new tree when size1 is a power of two.
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3.-4.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            raise ProofError(f"the consistency proof from {size1} to {size2} is too long")
        # 6b.
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn, sn = fn >> 1, sn >> 1
    # 7.
    if sn != 0:
        raise ProofError(f"the consistency proof from {size1} to {size2} is too short")
    if not constant_time_equal(fr, root1):
        raise ProofError(f"the consistency proof does not lead to the root of the tree of {size1}")
    if not constant_time_equal(sr, root2):
        raise ProofError(f"the consistency proof does not lead to the root of the tree of {size2}")


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not a {HASH_SIZE}-byte SHA-256 hash")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(f"proof hash {i}", h)

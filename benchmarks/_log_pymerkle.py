"""pymerkle 7 on the log benchmark's entries, for comparison only (never a dependency).

pymerkle keeps only the leaves and computes subtree roots on demand (with an in-process
cache), and its proofs are its own format, so it is measured on what both do: append,
root, prove, verify.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PymerkleRun", "run_pymerkle"]

_BATCH = 10_000
_PROOFS = 200
_CONSISTENCY = 50  # each needs pymerkle's root at the smaller size: slow when cold


@dataclass(frozen=True)
class PymerkleRun:
    root: bytes
    append_rate: float  # entries/s
    root_ms: float
    prove_ms: float
    verify_inclusion_us: float
    verify_consistency_us: float


def run_pymerkle(entries: list[bytes], directory: Path) -> PymerkleRun | None:
    try:
        pymerkle: Any = importlib.import_module("pymerkle")
    except ImportError:
        print("   log: pymerkle is not importable; no comparison", file=sys.stderr)
        return None
    print(f"   log: pymerkle {pymerkle.__version__}: appending", file=sys.stderr, flush=True)
    tree = pymerkle.SqliteTree(str(directory / "pymerkle.db"))
    start = time.perf_counter()
    for i in range(0, len(entries), _BATCH):
        tree.append_entries(entries[i : i + _BATCH])
    rate = len(entries) / (time.perf_counter() - start)
    size = len(entries)
    start = time.perf_counter()
    root = tree.get_root(size)
    root_ms = (time.perf_counter() - start) * 1e3
    step = max(1, size // _PROOFS)
    start = time.perf_counter()
    # pymerkle counts leaves from 1
    proofs = [(i, tree.prove_inclusion(i + 1, size)) for i in range(0, size, step)[:_PROOFS]]
    prove_ms = (time.perf_counter() - start) * 1e3 / len(proofs)
    leaves = {i: tree.get_leaf(i + 1) for i, _ in proofs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        incl = _median_us(
            [lambda i=i, p=p: pymerkle.verify_inclusion(leaves[i], root, p) for i, p in proofs]
        )
        pairs = [
            (m, tree.get_root(m), tree.prove_consistency(m, size))
            for m in range(1, size, step)[:_PROOFS]
        ]
        cons = _median_us(
            [lambda s=s, p=p: pymerkle.verify_consistency(s, root, p) for _, s, p in pairs]
        )
    tree.close()
    return PymerkleRun(bytes(root), rate, root_ms, prove_ms, incl, cons)


def _median_us(calls: list[Any]) -> float:
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6

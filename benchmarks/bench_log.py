"""Transparency log: append rate into SQLite, proof sizes, and proof verification time at
one million entries, beside pymerkle 7 on the same RFC 9162 hashing when it is importable.

Run: python -m benchmarks.run log   (not yet in ``make bench``'s suites)
     LOG_BENCH_SIZE=100000 python -m benchmarks.run log   (a quicker, smaller run)

The SQLite database uses the CAS's own engine settings (WAL, synchronous=FULL, BEGIN
IMMEDIATE). The bulk append runs on tmpfs when /dev/shm exists, so it measures the log's
CPU and SQL cost; one entry per transaction (the CAS's pattern) is measured on tmpfs and
on disk, where each commit waits for an fsync. pymerkle is optional and never a
dependency: put it on PYTHONPATH to compare (benchmarks/_log_pymerkle.py).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks._common import Row
from benchmarks._log_pymerkle import PymerkleRun, run_pymerkle
from securetf.cas.store._engine import make_engine, parse_url
from securetf.log import LogTree, leaf_hash, verify_consistency, verify_inclusion
from securetf.log.sql import SqlLogStore

SIZE = int(os.environ.get("LOG_BENCH_SIZE", "1000000"))
BATCH = 10_000  # entries per transaction in the bulk append
ENTRY_SIZE = 128  # bytes: a policy-version or tag-move record
SINGLE_APPENDS = 200  # one transaction each
PROOFS = 1_000  # random proofs built and verified
TARGET_VERIFY = "< 1,000 µs"
PYMERKLE = "pymerkle 7 SqliteTree"


def _entries(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(ENTRY_SIZE) for _ in range(n)]


def _say(message: str) -> None:
    print(f"   log: {message}", file=sys.stderr, flush=True)


def _median_us(fn: Callable[[int], object], count: int) -> float:
    times = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _sqlite_tree(directory: Path) -> LogTree:
    return LogTree(SqlLogStore(make_engine(parse_url(f"sqlite:///{directory / 'log.db'}"))))


def _append_all(tree: LogTree, entries: Sequence[bytes]) -> float:
    start = time.perf_counter()
    for i in range(0, len(entries), BATCH):
        tree.extend(entries[i : i + BATCH])
    return len(entries) / (time.perf_counter() - start)


def _single_appends(tree: LogTree) -> float:
    _say(f"{SINGLE_APPENDS} appends of one entry each")
    start = time.perf_counter()
    for entry in _entries(SINGLE_APPENDS, seed=3):
        tree.append(entry)
    return SINGLE_APPENDS / (time.perf_counter() - start)


def run() -> list[Row]:
    label = f"{SIZE:,}"
    entries = _entries(SIZE)
    rng = random.Random(2)
    indices = [rng.randrange(SIZE) for _ in range(PROOFS)]
    firsts = [rng.randrange(1, SIZE) for _ in range(PROOFS)]
    leaves = [leaf_hash(entries[i]) for i in indices]
    m: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        _say(f"appending {label} entries to SQLite")
        tree = _sqlite_tree(Path(d))
        m["append"] = _append_all(tree, entries)
        m["db_mb"] = sum(p.stat().st_size for p in Path(d).iterdir()) / 1e6
        pm = run_pymerkle(entries, Path(d))
        m["root_ms"] = _timed_ms(lambda: tree.root(SIZE))
        root = tree.root(SIZE)
        if pm is not None and pm.root != root:
            raise RuntimeError("pymerkle's root differs from the log's on the same entries")
        start = time.perf_counter()
        inclusion = [tree.inclusion_proof(i, SIZE) for i in indices]
        m["prove_ms"] = (time.perf_counter() - start) * 1e3 / PROOFS
        roots = {k: tree.root(k) for k in firsts}
        consistency = [tree.consistency_proof(k, SIZE) for k in firsts]
        _say("timing verification")
        m["incl_us"] = _median_us(
            lambda k: verify_inclusion(leaves[k], indices[k], SIZE, inclusion[k], root), PROOFS
        )
        m["cons_us"] = _median_us(
            lambda k: verify_consistency(firsts[k], SIZE, consistency[k], roots[firsts[k]], root),
            PROOFS,
        )
        m["single_tmpfs"] = _single_appends(tree)
    with tempfile.TemporaryDirectory() as d:  # on disk: each commit waits for an fsync
        disk = _sqlite_tree(Path(d))
        disk.extend(entries[:BATCH])
        m["single_disk"] = _single_appends(disk)
    sizes = ([len(p) for p in inclusion], [len(p) for p in consistency])
    return _rows(label, m, sizes, pm)


def _rows(
    label: str,
    m: dict[str, float],
    sizes: tuple[list[int], list[int]],
    pm: PymerkleRun | None,
) -> list[Row]:
    def row(what: str, key: str, unit: str, pm_value: float | None = None, target: str = "") -> Row:
        if pm is None or pm_value is None:
            return Row("log", what, m[key], unit, target=target)
        return Row("log", what, m[key], unit, PYMERKLE, pm_value, target)

    incl, cons = sizes
    m["incl_bytes"] = statistics.median(incl) * 32
    m["cons_bytes"] = statistics.median(cons) * 32
    per_tx = f"{BATCH:,} per transaction"
    return [
        row(
            f"append {label} entries, {per_tx} (SQLite on tmpfs, {m['db_mb']:.0f} MB)",
            "append",
            "entries/s",
            pm.append_rate if pm else None,
        ),
        row("append one entry per transaction (SQLite on tmpfs)", "single_tmpfs", "entries/s"),
        row(
            "append one entry per transaction (SQLite on disk, synchronous=FULL)",
            "single_disk",
            "entries/s",
        ),
        row(f"root of {label} entries, cold (SQLite)", "root_ms", "ms", pm.root_ms if pm else None),
        row(
            f"build an inclusion proof at {label} (SQLite)",
            "prove_ms",
            "ms",
            pm.prove_ms if pm else None,
        ),
        row(
            f"inclusion proof size at {label} (median; max {max(incl)} hashes)",
            "incl_bytes",
            "bytes",
        ),
        row(
            f"consistency proof size to {label} (median; max {max(cons)} hashes)",
            "cons_bytes",
            "bytes",
        ),
        row(
            f"verify an inclusion proof at {label} (median)",
            "incl_us",
            "µs",
            pm.verify_inclusion_us if pm else None,
            TARGET_VERIFY,
        ),
        row(
            f"verify a consistency proof to {label} (median)",
            "cons_us",
            "µs",
            pm.verify_consistency_us if pm else None,
            TARGET_VERIFY,
        ),
    ]

"""Shared pieces of the benchmarks: the result row, timing, and the openssl baseline."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table: a measurement beside its same-run baseline."""

    suite: str
    what: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline_value: float = 0.0
    target: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline_value if self.baseline_value else None


def median_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The median of ``repeat`` wall-clock timings of ``fn`` in seconds: the machine is
    noisy, and the fastest run would flatter the result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def openssl_gcm_bytes_per_second(seconds: int = 2) -> float:
    """Single-core ``openssl speed -evp aes-256-gcm`` at its largest block size, in bytes/s."""
    out = subprocess.run(
        ["openssl", "speed", "-elapsed", "-seconds", str(seconds), "-evp", "aes-256-gcm"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.upper().startswith("AES-256-GCM"):
            figures = re.findall(r"([\d.]+)k", line)
            return float(figures[-1]) * 1000.0
    raise RuntimeError(f"no AES-256-GCM line in openssl speed output:\n{out}")

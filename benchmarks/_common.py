"""Shared pieces of the benchmarks: the result row, timing, and the openssl baseline."""

from __future__ import annotations

import re
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


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` wall-clock timings of ``fn`` in seconds (the machine is noisy)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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

"""Interleaved latency sampling and the statistics the serving benchmark reports.

The machine is shared and noisy, so configurations are never measured one after another:
every round calls each configuration once, in a fresh random order, so a slow spell of the
machine falls on all of them alike. The headline is the ratio of medians, with a bootstrap
confidence interval over rounds (each resample keeps a round's calls together).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]
WARMUP = 2
BOOTSTRAP = 4000


@dataclass(frozen=True)
class Call:
    """One configuration of one model: its key and the call that runs a request."""

    key: tuple[str, str]  # (model name, configuration)
    fn: Callable[[], object]
    every: int = 1  # take part in every n-th round only


def interleave(calls: Sequence[Call], rounds: int, seed: int = 1) -> dict[tuple[str, str], Samples]:
    """Seconds per call of each configuration, measured in randomly ordered rounds."""
    rng = np.random.default_rng(seed)
    for call in calls:
        for _ in range(WARMUP):
            call.fn()
    times: dict[tuple[str, str], list[float]] = {c.key: [] for c in calls}
    for r in range(rounds):
        due = [c for c in calls if r % c.every == 0]
        for i in rng.permutation(len(due)):
            call = due[i]
            start = time.perf_counter()
            call.fn()
            times[call.key].append(time.perf_counter() - start)
    return {k: np.asarray(v) for k, v in times.items()}


def ms(samples: Samples, q: float) -> float:
    """The ``q``-th percentile in milliseconds."""
    return float(np.percentile(samples, q)) * 1000.0


def ratio_ci(
    num: Samples, den: Samples, *, level: float = 0.95, seed: int = 2
) -> tuple[float, float, float]:
    """median(num) / median(den), and its bootstrap interval; the samples are paired by round."""
    if len(num) != len(den):
        raise ValueError("paired samples must have the same length")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(BOOTSTRAP, len(num)))
    ratios = np.median(num[idx], axis=1) / np.median(den[idx], axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(np.median(num) / np.median(den)), float(lo), float(hi)


def summary(times: Mapping[tuple[str, str], Samples], key: tuple[str, str]) -> dict[str, float]:
    s = times[key]
    return {"p50": ms(s, 50), "p99": ms(s, 99), "rps": 1.0 / float(np.mean(s)), "n": len(s)}

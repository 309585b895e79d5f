"""TensorFlow's own distributed engine, unmodified, across two hosts through the shield."""

from __future__ import annotations

import sys

import pytest

from .conftest import Node, StartNode, peer_map, verdict, workers
from .lab import Capture, Lab, streams, tls_records

pytestmark = pytest.mark.slow
STEPS = 30


def _worker(start_node: StartNode, lab: Lab, host: str, k: int, n: int) -> Node:
    return start_node(
        host,
        k,
        [sys.executable, "-m", "tests.shield.net.tf_worker", str(STEPS)],
        patience=60.0,
        network=workers(n),
        peers=peer_map(lab, n),
    )


@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.soak)])
def test_multi_worker_job_ends_with_identical_weights(
    lab: Lab, start_node: StartNode, n: int
) -> None:
    pytest.importorskip("tensorflow")
    capture = Capture(lab)
    try:
        nodes = [_worker(start_node, lab, h, k, n) for k, h in enumerate("abc"[:n])]
        results = [verdict(n, timeout=240) for n in nodes]
    finally:
        frames = capture.stop()
    assert all(n.returncode == 0 for n in nodes), results
    assert len({r["weights"] for r in results}) == 1, results
    assert all(r["loss"] == pytest.approx(results[0]["loss"]) for r in results)
    # The collectives crossed the link, and all of it as TLS records (no gRPC in the clear).
    data = streams(frames)
    assert sum(len(s) for s in data.values()) > 100_000
    for stream in data.values():
        tls_records(stream)
    assert not any(b"PRI * HTTP/2.0" in f or b"/tensorflow." in f for f in frames)

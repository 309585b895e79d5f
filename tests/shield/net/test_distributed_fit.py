"""tf-keras ``fit`` under MultiWorkerMirroredStrategy through the shield, against the same
job without it.

Keras 3's ``fit`` does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585);
with ``TF_USE_LEGACY_KERAS=1``, ``tf.keras`` is the tf-keras package (installed by
``make setup``), and the program is the same unmodified one.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import StartNode, peer_map, verdict, workers
from .jobs import run_direct, worker
from .lab import Capture, Lab, streams, tls_records

pytestmark = pytest.mark.slow
STEPS = 20
LEGACY = {"TF_USE_LEGACY_KERAS": "1"}


@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.soak)])
def test_fit_through_the_shield_equals_fit_without_it(
    lab: Lab, start_node: StartNode, n: int
) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    hosts = "abc"[:n]
    capture = Capture(lab)
    try:
        nodes = [
            start_node(
                host,
                k,
                worker(STEPS, "fit"),
                patience=60.0,
                network=workers(n),
                peers=peer_map(lab, n),
                env=LEGACY,
            )
            for k, host in enumerate(hosts)
        ]
        shielded = [verdict(node, timeout=240) for node in nodes]
    finally:
        frames = capture.stop()
    assert all(node.returncode == 0 for node in nodes), shielded
    # 1. Every worker ends with the same weights, bit for bit (the all-reduce keeps them so).
    assert len({r["weights"] for r in shielded}) == 1
    # 2. The same weights as the same job without the shield. The job is deterministic
    # (fixed seed, fixed data order, the same collectives), so only float noise may differ.
    direct = run_direct(lab, hosts, worker(STEPS, "fit"), env=LEGACY)
    assert len({r["weights"] for r in direct}) == 1
    np.testing.assert_allclose(shielded[0]["values"], direct[0]["values"], rtol=1e-5, atol=1e-6)
    assert shielded[0]["loss"] == pytest.approx(direct[0]["loss"], rel=1e-5)
    # 3. The job trained: the loss fell well below the untrained model's (about 8).
    assert shielded[0]["loss"] < 4.0
    # 4. The collectives crossed the link only as TLS records (no gRPC in the clear).
    data = streams(frames)
    assert sum(len(s) for s in data.values()) > 100_000
    for stream in data.values():
        tls_records(stream)
    assert not any(b"PRI * HTTP/2.0" in f or b"/tensorflow." in f for f in frames)

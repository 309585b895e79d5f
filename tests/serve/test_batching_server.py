"""Concurrent requests to a real server share model calls; the metrics show it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from securetf.client import ServingClient
from tests.serve.support import POLICY, SERVICE, ServerProcess, rows


def _batch_counts(metrics: str, model: str) -> tuple[float, float]:
    """(model calls, calls with more than one row) for ``model`` from /metrics."""
    calls = one = 0.0
    for line in metrics.splitlines():
        m = re.match(
            r'securetf_serve_batch_size_bucket\{le="([^"]+)",model="([^"]+)"\} (\S+)', line
        )
        if m and m.group(2) == model:
            if m.group(1) == "1.0":
                one = float(m.group(3))
            if m.group(1) == "+Inf":
                calls = float(m.group(3))
    return calls, calls - one


def test_concurrent_requests_are_batched(server: ServerProcess) -> None:
    assert server.ca_pem is not None
    with server.http() as http:
        before = _batch_counts(http.get("/metrics").text, "kdense")
    x = rows(32, seed=3)
    clients = [
        ServingClient(server.url, ca_pem=server.ca_pem, service=SERVICE, policy=POLICY)
        for _ in range(16)
    ]
    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(
                pool.map(lambda i: clients[i % 16].predict("kdense", x[i : i + 1]), range(32))
            )
        single = [clients[0].predict("kdense", x[i : i + 1]) for i in range(32)]
    finally:
        for c in clients:
            c.close()
    # Every caller got its own row back, the same as when it asked alone.
    np.testing.assert_allclose(np.asarray(got), np.asarray(single), atol=1e-6)
    with server.http() as http:
        text = http.get("/metrics").text
    calls, multi = _batch_counts(text, "kdense")
    assert multi - before[1] >= 1, "no model call served more than one request"
    assert calls - before[0] < 32 + 32, "concurrent requests were not merged"
    assert (
        'securetf_serve_requests_total{api="rest",code="200",method="predict",model="kdense"}'
        in text
    )
    assert "securetf_serve_request_seconds_bucket" in text

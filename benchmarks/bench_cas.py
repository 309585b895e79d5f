"""CAS: nonce + provision round trips per second and latency, with the CAS in its own
process (sim evidence, SQLite), beside GET /healthz on the same connections as the HTTP
stack's floor.

Run: python -m benchmarks.run cas
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.cas.server_support import CasProcess, free_port
from tests.cas.support import DATASET_KEY, Owners, Runtime, policy_yaml

from benchmarks._common import Row
from securetf.attestation import default_sim_trust
from securetf.client import CasClient, attest_cas, save_pin

DURATION = 4.0
CONCURRENCY = (1, 16, 64)


def _load(n: int, one: Callable[[CasClient], None], url: str) -> tuple[float, list[float]]:
    """``n`` threads, each with its own connection, calling ``one`` for DURATION seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + DURATION

    def worker() -> None:
        mine: list[float] = []
        with CasClient.for_url(url) as client:
            while time.monotonic() < stop:
                start = time.perf_counter()
                one(client)
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    begin = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.monotonic() - begin), latencies


def _pct(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000
    )


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        os.environ["SECURETF_HOME"] = str(home)
        cas = CasProcess(data=root / "cas", home=home, port=free_port())
        cas.start()
        try:
            pin = attest_cas(
                cas.url,
                now=int(time.time()),
                allowed_tees=("sim",),
                sim_trust=default_sim_trust(home),
            )
            save_pin(pin, home)
            owners = Owners()
            yaml = policy_yaml(owners)
            with CasClient.for_url(cas.url) as client:
                client.apply_policy(yaml, owners.alice, {"dataset-key": DATASET_KEY})
            runtime = Runtime(home=home)

            def provision(client: CasClient) -> None:
                nonce = client.nonce().nonce
                client.provision(runtime.request(nonce))

            def health(client: CasClient) -> None:
                client._call("GET", "/healthz")

            for n in CONCURRENCY:
                rate, lat = _load(n, provision, cas.url)
                base, _ = _load(n, health, cas.url)
                target = ">= 500/s" if n == 16 else ""
                rows.append(
                    Row(
                        "cas",
                        f"nonce+provision, {n} clients",
                        rate,
                        "round trips/s",
                        "GET /healthz",
                        base,
                        target,
                    )
                )
                rows.append(Row("cas", f"p50 latency, {n} clients", _pct(lat, 50), "ms"))
                rows.append(
                    Row(
                        "cas",
                        f"p99 latency, {n} clients",
                        _pct(lat, 99),
                        "ms",
                        target="< 50 ms" if n == 16 else "",
                    )
                )
        finally:
            cas.stop()
    return rows

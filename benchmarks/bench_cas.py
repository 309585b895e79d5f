"""CAS: nonce + provision round trips per second and latency, with the CAS in processes of
its own (sim evidence), beside GET /healthz on the same connections as the HTTP stack's floor.

- One CAS on SQLite (the default deployment, `make demo`): 1, 16 and 64 clients.
- The CAS on PostgreSQL (every commit flushed, as PostgreSQL's defaults do): one replica,
  then two replicas of it, the clients spread over both (each client's SDK is given both
  URLs, its own first): how two replicas scale on this machine.

The clients are threads of this process, each a runtime of its own as `securetf run` is
(its own home: it proves each answer in the CAS's transparency log from the proofs the
answer carries, and keeps its own checkpoint); their CPU (TLS, JSON, the sim evidence, the
proofs) is part of what the machine's cores do per round trip (docs/cas.md, "Throughput").

Run: python -m benchmarks.run cas
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cas.pg_support import postgres
from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, Runtime, policy_yaml
from tests.ports import free_port

from benchmarks._common import Row
from securetf.attestation import default_sim_trust
from securetf.client import CasClient, attest_cas, load_pin, save_pin

DURATION = 4.0
CONCURRENCY = (1, 16, 64)
REPLICA_CONCURRENCY = (16, 64)


def _load(n: int, one: Callable[[CasClient], None], urls: list[str]) -> tuple[float, list[float]]:
    """``n`` threads, each with its own connection (to ``urls[i % len(urls)]`` first),
    calling ``one`` for DURATION seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + DURATION

    def worker(i: int) -> None:
        mine: list[float] = []
        first = i % len(urls)
        # Each client is a runtime of its own: the pins of the home, a kept log checkpoint
        # of its own (runtimes sharing one home would queue on its lock and fsync).
        own = Path(tempfile.mkdtemp(prefix=f"client-{i}-", dir=os.environ["SECURETF_HOME"]))
        pins = [load_pin(u) for u in urls[first:] + urls[:first]]
        with CasClient(pins, home=own) as client:
            while time.monotonic() < stop:
                start = time.perf_counter()
                one(client)
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
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


@contextmanager
def _cas(
    root: Path, home: Path, *, replicas: int = 1, db: str | None = None
) -> Iterator[list[str]]:
    """``replicas`` CAS processes on one data directory and database, attested, with the
    test policy applied; their URLs."""
    data = root / f"cas-{os.urandom(4).hex()}"
    procs = [CasProcess(data=data, home=home, port=free_port(), db=db) for _ in range(replicas)]
    try:
        for proc in procs:  # one after the other: the first creates the data directory's keys
            proc.start()
        for proc in procs:
            pin = attest_cas(
                proc.url,
                now=int(time.time()),
                allowed_tees=("sim",),
                sim_trust=default_sim_trust(home),
            )
            save_pin(pin, home)
        urls = [p.url for p in procs]
        owners = Owners()
        with CasClient.for_url(urls[0]) as client:
            client.apply_policy(policy_yaml(owners), owners.alice, {"dataset-key": DATASET_KEY})
        yield urls
    finally:
        for proc in procs:
            proc.stop()


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        os.environ["SECURETF_HOME"] = str(home)
        runtime = Runtime(home=home)

        def provision(client: CasClient) -> None:
            nonce = client.nonce().nonce
            client.provision(runtime.request(nonce))

        def health(client: CasClient) -> None:
            client._call("GET", "/healthz")

        with _cas(root, home) as urls:
            for n in CONCURRENCY:
                rate, lat = _load(n, provision, urls)
                base, _ = _load(n, health, urls)
                rows.append(
                    Row(
                        "cas",
                        f"nonce+provision, {n} clients (SQLite)",
                        rate,
                        "round trips/s",
                        "GET /healthz",
                        base,
                        ">= 300/s" if n == 16 else "",
                    )
                )
                rows.append(Row("cas", f"p50 latency, {n} clients", _pct(lat, 50), "ms"))
                rows.append(
                    Row(
                        "cas",
                        f"p99 latency, {n} clients",
                        _pct(lat, 99),
                        "ms",
                        target="< 150 ms" if n == 64 else "",
                    )
                )
        with postgres(durable=True) as pg:
            one: dict[int, float] = {}
            for replicas in (1, 2):
                db = pg.create_database()
                with _cas(root, home, replicas=replicas, db=db) as urls:
                    for n in REPLICA_CONCURRENCY:
                        rate, lat = _load(n, provision, urls)
                        if replicas == 1:
                            one[n] = rate
                            what, base_name, base = "1 replica", "", 0.0
                        else:
                            what, base_name, base = "2 replicas", "1 replica", one[n]
                        rows.append(
                            Row(
                                "cas",
                                f"nonce+provision, {n} clients, {what} (PostgreSQL)",
                                rate,
                                "round trips/s",
                                base_name,
                                base,
                            )
                        )
                        rows.append(
                            Row(
                                "cas",
                                f"p99 latency, {n} clients, {what} (PostgreSQL)",
                                _pct(lat, 99),
                                "ms",
                            )
                        )
                pg.drop_database(db)
    return rows

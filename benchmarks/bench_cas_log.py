"""What the transparency log costs provisioning: nonce + provision round trips per second
at 16 clients, with the CAS's log on (an entry appended in each provisioning's
transaction) and off (benchmarks/_cas_nolog.py), three interleaved passes each; and with
the log on, the same clients proving each answer as ``securetf run`` does (checkpoint,
consistency with the kept one, the certificate's and the policy's inclusion), each client
with a home of its own, as separate runtimes have.

Run: python -m benchmarks.run cas_log
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import tests.cas.server_support as server_support
from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, Runtime, policy_yaml
from tests.ports import free_port

from benchmarks._common import Row
from securetf.attestation import default_sim_trust
from securetf.client import CasClient, CasPin, attest_cas

DURATION = 4.0
CLIENTS = 16
PASSES = 3
TARGET = "log costs <= 10 %"


def _load(make: Callable[[int], CasClient], runtime: Runtime) -> float:
    """CLIENTS threads, each with its own client, provisioning for DURATION seconds."""
    done = [0] * CLIENTS
    stop = time.monotonic() + DURATION

    def worker(i: int) -> None:
        with make(i) as client:
            while time.monotonic() < stop:
                client.provision(runtime.request(client.nonce().nonce))
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    begin = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - begin)


def _pass(root: Path, *, log: bool) -> tuple[float, float | None]:
    """(round trips/s without client proofs, with them when the log is on)."""
    home = root / "home"
    home.mkdir()
    os.environ["SECURETF_HOME"] = str(home)
    exe = server_support.EXE
    if not log:
        server_support.EXE = [sys.executable, "-m", "benchmarks._cas_nolog"]
    cas = CasProcess(data=root / "cas", home=home, port=free_port())
    try:
        cas.start()
    finally:
        server_support.EXE = exe
    try:
        pin = attest_cas(
            cas.url, now=int(time.time()), allowed_tees=("sim",), sim_trust=default_sim_trust(home)
        )
        # Without a log key a client proves nothing (the CAS's cost alone).
        bare = dataclasses.replace(pin, log_vkey=None)
        owners = Owners()
        with CasClient(bare) as client:
            client.apply_policy(policy_yaml(owners), owners.alice, {"dataset-key": DATASET_KEY})
        runtime = Runtime(home=home)
        rate = _load(lambda _: CasClient(bare), runtime)
        if not log:
            return rate, None

        def proving(i: int, pin: CasPin = pin) -> CasClient:
            mine = home / f"runtime-{i}"
            mine.mkdir(exist_ok=True)
            return CasClient(pin, home=mine)

        return rate, _load(proving, runtime)
    finally:
        cas.stop()


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def run() -> list[Row]:
    on: list[float] = []
    off: list[float] = []
    proven: list[float] = []
    for i in range(PASSES):
        for log in (True, False) if i % 2 == 0 else (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                rate, with_proofs = _pass(Path(tmp), log=log)
            (on if log else off).append(rate)
            if with_proofs is not None:
                proven.append(with_proofs)
            print(
                f"   cas_log: pass {i} log={'on' if log else 'off'} {rate:,.1f}/s"
                + (f", proving {with_proofs:,.1f}/s" if with_proofs else ""),
                file=sys.stderr,
                flush=True,
            )
    m_on, m_off, m_proven = (statistics.median(v) for v in (on, off, proven))
    return [
        Row(
            "cas_log",
            f"nonce+provision, {CLIENTS} clients, log on (passes {_spread(on)})",
            m_on,
            "round trips/s",
            f"log off (passes {_spread(off)})",
            m_off,
            TARGET,
        ),
        Row(
            "cas_log",
            f"... and each answer proven by the client (passes {_spread(proven)})",
            m_proven,
            "round trips/s",
            f"log off (passes {_spread(off)})",
            m_off,
        ),
    ]

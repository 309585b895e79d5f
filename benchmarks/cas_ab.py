"""Two builds of the CAS side by side: nonce + provision round trips against each, in
alternating passes, reporting the medians of the passes' ratios (new / old) of the rate,
the CAS process's CPU per round trip and the p50 and p99 latency. On a shared machine the
rates of separate runs swing by 2x; passes taken one right after the other see the same
machine, so their ratios are what a change is judged by.

Run: python -m benchmarks.cas_ab OLD_SRC [NEW_SRC] [--clients N] [--passes P]
  (OLD_SRC: the ``src`` directory of another checkout, e.g. a ``git worktree`` at the
  commit to compare with; NEW_SRC defaults to this checkout's. The clients are this
  checkout's SDK, without log proofs, so both builds answer the same requests.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, Runtime, policy_yaml
from tests.ports import free_port

from benchmarks.bench_cas_log import _cpu_of
from securetf.attestation import default_sim_trust
from securetf.client import CasClient, attest_cas

DURATION = 4.0


@dataclasses.dataclass(frozen=True)
class Pass:
    rate: float
    cpu_ms: float
    p50_ms: float
    p99_ms: float


def _pass(src: Path, clients: int) -> Pass:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["SECURETF_HOME"] = str(home)
        os.environ["PYTHONPATH"] = str(src)  # the CAS process runs this build
        cas = CasProcess(data=Path(tmp) / "cas", home=home, port=free_port())
        cas.start()
        assert cas.proc is not None
        try:
            pin = attest_cas(
                cas.url,
                now=int(time.time()),
                allowed_tees=("sim",),
                sim_trust=default_sim_trust(home),
            )
            bare = dataclasses.replace(pin, log_vkey=None)
            owners = Owners()
            with CasClient(bare) as client:
                client.apply_policy(policy_yaml(owners), owners.alice, {"dataset-key": DATASET_KEY})
            runtime = Runtime(home=home)
            stop = time.monotonic() + DURATION
            latencies: list[float] = []

            def worker() -> None:
                with CasClient(bare) as client:
                    while time.monotonic() < stop:
                        begin = time.perf_counter()
                        client.provision(runtime.request(client.nonce().nonce))
                        latencies.append(time.perf_counter() - begin)

            threads = [threading.Thread(target=worker) for _ in range(clients)]
            cpu0, begin = _cpu_of(cas.proc.pid), time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed, count = time.monotonic() - begin, len(latencies)
            latencies.sort()
            return Pass(
                count / elapsed,
                (_cpu_of(cas.proc.pid) - cpu0) / count * 1000,
                latencies[count // 2] * 1000,
                latencies[min(count - 1, int(count * 0.99))] * 1000,
            )
        finally:
            cas.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?", default=Path(__file__).parents[1] / "src")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    runs: dict[str, list[Pass]] = {"old": [], "new": []}
    for i in range(args.passes):
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            result = _pass(args.old if name == "old" else args.new, args.clients)
            runs[name].append(result)
            print(f"pass {i} {name}: {result}", file=sys.stderr, flush=True)
    for field in ("rate", "cpu_ms", "p50_ms", "p99_ms"):
        ratios = [
            getattr(n, field) / getattr(o, field)
            for n, o in zip(runs["new"], runs["old"], strict=True)
        ]
        print(
            f"{field}: new/old median {statistics.median(ratios):.2f} "
            f"(spread {min(ratios):.2f}-{max(ratios):.2f}); medians "
            f"{statistics.median(getattr(x, field) for x in runs['new']):.1f} vs "
            f"{statistics.median(getattr(x, field) for x in runs['old']):.1f}"
        )


if __name__ == "__main__":
    main()

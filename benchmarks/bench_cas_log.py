"""What the transparency log costs provisioning: nonce + provision round trips at 16
clients against a CAS with its log on (an entry appended in each provisioning's
transaction) and one with it off (benchmarks/_cas_nolog.py); with the log on, also the
same clients proving each answer as ``securetf run`` does (from the proofs the answer
carries), each client with a home of its own, as separate runtimes have. Both CAS
processes run for the whole sitting; each pass runs the three loads one right after the
other, in an order that turns from pass to pass.

The verdict is the CAS's CPU per round trip (from /proc), log on with proving clients vs
log off, as the median of the passes' ratios: a CAS's capacity is CPU-bound, its clients
run elsewhere in a deployment, and on this shared 2-core machine the rates (reported
beside it) swing with whatever else runs. A pass's loads run within seconds of each
other, so their ratio sees the same machine.

Run: python -m benchmarks.run cas_log
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import tests.cas.server_support as server_support
from tests.cas.server_support import CasProcess
from tests.cas.support import DATASET_KEY, Owners, Runtime, policy_yaml
from tests.ports import free_port

from benchmarks._common import Row
from securetf.attestation import default_sim_trust
from securetf.client import CasClient, CasPin, attest_cas

DURATION = 3.0
CLIENTS = 16
PASSES = 10
TARGET = "<= 1.10x (the log costs at most 10 %)"


@dataclasses.dataclass(frozen=True)
class Load:
    rate: float  # round trips/s
    cas_cpu_ms: float  # the CAS process's CPU per round trip
    client_cpu_ms: float  # the clients' (this process's) CPU per round trip

    @property
    def cpu_ms(self) -> float:
        return self.cas_cpu_ms + self.client_cpu_ms


def _cpu_of(pid: int) -> float:
    """Seconds of CPU (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load(make: Callable[[int], CasClient], runtime: Runtime, cas_pid: int) -> Load:
    """CLIENTS threads, each with its own client, provisioning for DURATION seconds; the
    rate and the CPU each round trip cost the CAS and the clients (noise on this machine
    moves the rate far more than the CPU a round trip takes)."""
    done = [0] * CLIENTS
    stop = time.monotonic() + DURATION

    def worker(i: int) -> None:
        with make(i) as client:
            while time.monotonic() < stop:
                client.provision(runtime.request(client.nonce().nonce))
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    cas0, own0, begin = _cpu_of(cas_pid), _own_cpu(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, total = time.monotonic() - begin, sum(done)
    cas_ms = (_cpu_of(cas_pid) - cas0) / total * 1000
    return Load(total / elapsed, cas_ms, (_own_cpu() - own0) / total * 1000)


@contextlib.contextmanager
def _cas(root: Path, home: Path, *, log: bool) -> Iterator[CasProcess]:
    """A CAS with its log on or off (benchmarks/_cas_nolog.py), and the test policy."""
    exe = server_support.EXE
    if not log:
        server_support.EXE = [sys.executable, "-m", "benchmarks._cas_nolog"]
    cas = CasProcess(data=root / ("cas-on" if log else "cas-off"), home=home, port=free_port())
    try:
        cas.start()
    finally:
        server_support.EXE = exe
    try:
        yield cas
    finally:
        cas.stop()


@dataclasses.dataclass(frozen=True)
class _Arm:
    name: str
    make: Callable[[int], CasClient]
    pid: int


def _arms(stack: contextlib.ExitStack, root: Path) -> tuple[_Arm, _Arm, _Arm]:
    """(log off, log on, log on with proving clients): two CAS processes that run side by
    side for the whole sitting, each with the policy applied."""
    home = root / "home"
    home.mkdir()
    os.environ["SECURETF_HOME"] = str(home)
    made = []
    for log in (False, True):
        cas = stack.enter_context(_cas(root, home, log=log))
        assert cas.proc is not None
        pin = attest_cas(
            cas.url, now=int(time.time()), allowed_tees=("sim",), sim_trust=default_sim_trust(home)
        )
        # Without a log key a client proves nothing (the CAS's cost alone).
        bare = dataclasses.replace(pin, log_vkey=None)
        owners = Owners()
        with CasClient(bare) as client:
            client.apply_policy(policy_yaml(owners), owners.alice, {"dataset-key": DATASET_KEY})
        made.append((cas.proc.pid, pin, bare))
    (off_pid, _, off_bare), (on_pid, on_pin, on_bare) = made

    def proving(i: int, pin: CasPin = on_pin) -> CasClient:
        mine = home / f"runtime-{i}"
        mine.mkdir(exist_ok=True)
        return CasClient(pin, home=mine)

    return (
        _Arm("log off", lambda _: CasClient(off_bare), off_pid),
        _Arm("log on", lambda _: CasClient(on_bare), on_pid),
        _Arm("log on, proving", proving, on_pid),
    )


def _ratios(a: list[Load], b: list[Load], value: Callable[[Load], float]) -> list[float]:
    """Pass by pass: each pass ran its two CAS processes one right after the other, so
    their ratio sees the same machine; the passes' medians need not."""
    return [value(x) / value(y) for x, y in zip(a, b, strict=True)]


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def run() -> list[Row]:
    on: list[Load] = []
    off: list[Load] = []
    proven: list[Load] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        arms = _arms(stack, Path(tmp))
        runtime = Runtime(home=Path(tmp) / "home")
        by_arm = {arms[0].name: off, arms[1].name: on, arms[2].name: proven}
        for i in range(PASSES):
            # Each pass runs the three loads one right after the other, in an order that
            # turns from pass to pass, so that no arm always runs first or last.
            for arm in arms[i % 3 :] + arms[: i % 3]:
                load = _load(arm.make, runtime, arm.pid)
                by_arm[arm.name].append(load)
                print(f"   cas_log: pass {i} {arm.name}: {load}", file=sys.stderr, flush=True)

    def rate(x: Load) -> float:
        return x.rate

    def cas_cpu(x: Load) -> float:
        return x.cas_cpu_ms

    def cpu(x: Load) -> float:
        return x.cpu_ms

    rows = []
    for what, loads in (
        ("log on", on),
        ("log on, each answer proven by the client as `securetf run` does", proven),
    ):
        rates, cas_cpus = _ratios(loads, off, rate), _ratios(loads, off, cas_cpu)
        both = _ratios(loads, off, cpu)
        median_off = statistics.median(cas_cpu(x) for x in off)
        rows += [
            Row(
                "cas_log",
                f"nonce+provision, {CLIENTS} clients, {what}: round trips/s (median of "
                f"{PASSES} passes' ratios to log off, spread {_spread(rates)})",
                statistics.median(rate(x) for x in loads),
                "round trips/s",
                f"log off (passes {_spread([rate(x) for x in off], ',.0f')})",
                statistics.median(rate(x) for x in off),
            ),
            Row(
                "cas_log",
                f"... the CAS's CPU per round trip, as the median of the passes' ratios to "
                f"log off (spread {_spread(cas_cpus)}; medians "
                f"{statistics.median(cas_cpu(x) for x in loads):.2f} ms vs {median_off:.2f} "
                f"ms; with the clients' CPU: {statistics.median(both):.2f}x, spread "
                f"{_spread(both)})",
                statistics.median(cas_cpus),
                "x",
                f"log off (passes {_spread([cas_cpu(x) for x in off], '.1f')} ms)",
                1.0,
                TARGET if loads is proven else "",
            ),
        ]
    return rows

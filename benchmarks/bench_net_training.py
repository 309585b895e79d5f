"""The step time of a 2-worker MultiWorkerMirroredStrategy job through the network shield,
beside the same job without it.

Run: python -m benchmarks.run net_training   (or ``make bench``; needs root, ip, nft, TF)

Two hosts are network namespaces on a bridge (tests/shield/net/lab.py); every address is
inside them. The job is a custom training loop over synthetic data (the program times each
step itself, forcing the step's result, and drops the first steps: tracing and the
collectives' set-up). Without the shield, each worker runs in its host's namespace and
TensorFlow's gRPC crosses the bridge in the clear. With it, each worker runs behind a
``NetShield`` as ``securetf run`` starts it (tests/shield/net/node.py: its own namespace,
the other worker reached through mutual TLS 1.3 between the runtimes). Both programs and
both runtimes share the machine's two cores. The kinds alternate, ROUNDS times each. The
mean and median pool every measured step of worker 0 (the all-reduce keeps the workers in
step, so worker 1's times are the same); the ratio against the target is the median of
the rounds' own ratios (each round's shielded median over its direct median), which one
round disturbed by other work on the machine moves least.

A third kind, two plain hops (socat), sends each worker's connections to the other through
socat on its own host (loopback in) and socat on the peer's host (the bridge in, loopback
out): the shield's topology with every byte copied by two user-space relays, in the clear.
Its ratio is what any design with two relays costs here before a byte is encrypted.

Two sizes: the tests' job (8-32-1 MLP, batch 64: a step is a few tiny all-reduces, so its
time is the collectives' latency) and an MNIST-sized MLP (784-512-512-10, about 670,000
weights, 2.7 MB of gradients a step, global batch 256).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.shield.net.jobs import end, results, run_direct
from tests.shield.net.lab import ROOT, Lab
from tests.shield.net.node import node_config
from tests.shield.net.pki import Pki

from benchmarks._common import Row
from securetf.protocol.messages import NetworkGrant, PeerService

median = statistics.median

ROUNDS = 4
WARMUP = 5
STEPS = 45
PORT = 5000
TUNNEL = 7000
RELAY_IN, RELAY_OUT = 7200, 6000  # socat: a host's inbound port; outbound, per peer
HOSTS = "ab"
#: name -> (layer widths, global batch)
JOBS = {
    "8-32-1 MLP, batch 64 (the tests' job)": ([8, 32, 1], 64),
    "784-512-512-10 MLP, batch 256": ([784, 512, 512, 10], 256),
}

WORKER = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

widths, batch, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tf.keras.utils.set_random_seed(7)
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    layers = [tf.keras.Input((widths[0],))]
    layers += [tf.keras.layers.Dense(w, activation="relu") for w in widths[1:-1]]
    layers.append(tf.keras.layers.Dense(widths[-1]))
    model = tf.keras.Sequential(layers)
    optimizer = tf.keras.optimizers.SGD(0.01)
rng = np.random.default_rng(0)
x = rng.normal(size=(batch * 8, widths[0])).astype("float32")
y = rng.normal(size=(batch * 8, widths[-1])).astype("float32")
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch).with_options(options)
batches = iter(strategy.experimental_distribute_dataset(data))

@tf.function
def step(it):
    def replica(b):
        xb, yb = b
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(xb, training=True) - yb)) / batch
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    per_replica = strategy.run(replica, args=(next(it),))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

times = []
for _ in range(steps):
    start = time.perf_counter()
    float(step(batches))
    times.append(time.perf_counter() - start)
print(json.dumps({"steps": times}), flush=True)
"""


def _shielded(lab: Lab, pki: Pki, tmp: Path, command: list[str]) -> list[dict[str, Any]]:
    grant = NetworkGrant(
        peers=["worker"],
        listen=[PORT],
        cluster={"worker": PeerService(instances=len(HOSTS), listen=[PORT])},
    )
    peers = [f"worker-{k}={lab.addresses[h]}:{TUNNEL}" for k, h in enumerate(HOSTS)]
    nodes = []
    try:
        for k, host in enumerate(HOSTS):
            cfg = node_config(
                network=grant,
                service="worker",
                instance=k,
                identity=pki.identity("worker", k),
                registry=pki.registry,
                peers=peers,
                command=command,
                patience=60.0,
            )
            path = tmp / f"node-{host}-{os.urandom(4).hex()}.json"
            path.write_text(json.dumps(cfg))
            argv = [sys.executable, "-m", "tests.shield.net.node", str(path)]
            nodes.append(lab.popen(host, argv, cwd=ROOT, stdout=subprocess.PIPE))
        return results(nodes, "a shielded worker", 300)
    finally:
        end(nodes)


def _through_socat(lab: Lab, command: list[str]) -> list[dict[str, Any]]:
    """The job with each worker reaching the other through two socat hops (no TLS)."""
    socat = shutil.which("socat")
    if socat is None:
        raise RuntimeError("socat is missing: make setup installs Debian's socat")
    copy = [socat, "-b", "262144"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    relays, workers = [], []
    try:
        for k, host in enumerate(HOSTS):
            inbound = f"TCP-LISTEN:{RELAY_IN},bind={lab.addresses[host]},fork,reuseaddr,nodelay"
            relays.append(
                lab.popen(host, [*copy, inbound, f"TCP:127.0.0.1:{PORT},nodelay"], **quiet)
            )
            for j, peer in enumerate(HOSTS):
                if j != k:
                    out = f"TCP-LISTEN:{RELAY_OUT + j},bind=127.0.0.1,fork,reuseaddr,nodelay"
                    to = f"TCP:{lab.addresses[peer]}:{RELAY_IN},nodelay"
                    relays.append(lab.popen(host, [*copy, out, to], **quiet))
        time.sleep(0.5)
        for k, host in enumerate(HOSTS):
            cluster = [
                f"{lab.addresses[h]}:{PORT}" if j == k else f"127.0.0.1:{RELAY_OUT + j}"
                for j, h in enumerate(HOSTS)
            ]
            spec = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": k}}
            env = {**os.environ, "TF_CONFIG": json.dumps(spec)}
            workers.append(lab.popen(host, command, cwd=ROOT, env=env, stdout=subprocess.PIPE))
        return results(workers, "a worker behind socat", 300)
    finally:
        end(workers + relays)


class RelayCpu:
    """The CPU seconds the shield's relays (``securetf-relay`` processes) used while the block
    ran, sampled from /proc every 50 ms (a relay's last 50 ms before it exits are missed).
    It is what the shield takes from the two cores the workers compute on."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RelayCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self._seen.values())

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.05):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                if stat[stat.index("(") + 1 : stat.rindex(")")] == "securetf-relay":
                    fields = stat[stat.rindex(")") + 2 :].split()
                    self._seen[pid] = (int(fields[11]) + int(fields[12])) / tick


def _ms(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values) * 1000.0, statistics.median(values) * 1000.0


def _rows(name: str, shield: list[float], direct: list[float], ratios: list[float]) -> list[Row]:
    (s_mean, s_median), (d_mean, d_median) = _ms(shield), _ms(direct)
    what = f"2-worker step time, {name}"
    base = "same job without the shield"
    spread = f"{min(ratios):.2f} to {max(ratios):.2f}"
    return [
        Row("net_training", f"{what}: median", s_median, "ms", base, d_median),
        Row("net_training", f"{what}: mean", s_mean, "ms", base, d_mean),
        Row(
            "net_training",
            f"{what}: median of the {len(ratios)} rounds' ratios (rounds: {spread})",
            statistics.median(ratios),
            "x",
            target="<= 1.10x",
        ),
    ]


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="securetf-bench-net-") as tmp_name:
        tmp = Path(tmp_name)
        program = tmp / "worker.py"
        program.write_text(WORKER)
        pki = Pki(tmp / "pki")
        lab = Lab()
        try:
            lab.start(list(HOSTS))
            for name, (widths, batch) in JOBS.items():
                command = [sys.executable, str(program), json.dumps(widths), str(batch)]
                command.append(str(WARMUP + STEPS))
                shield: list[float] = []
                direct: list[float] = []
                ratios: list[float] = []
                relay_ms: list[float] = []
                plain: list[float] = []
                plain_ratios: list[float] = []
                for k in range(ROUNDS):
                    d = run_direct(lab, HOSTS, command, timeout=300)[0]["steps"][WARMUP:]
                    with RelayCpu() as cpu:
                        s = _shielded(lab, pki, tmp, command)[0]["steps"][WARMUP:]
                    relay_ms.append(cpu.seconds / (WARMUP + STEPS) * 1000.0)
                    p = _through_socat(lab, command)[0]["steps"][WARMUP:]
                    plain, plain_ratios = plain + p, [*plain_ratios, median(p) / median(d)]
                    ratios.append(statistics.median(s) / statistics.median(d))
                    print(f"net_training {name}, round {k}: {ratios[-1]:.2f}", file=sys.stderr)
                    direct, shield = direct + d, shield + s
                rows += _rows(name, shield, direct, ratios)
                spread = f"{min(plain_ratios):.2f} to {max(plain_ratios):.2f}"
                rows.append(
                    Row(
                        "net_training",
                        f"2-worker step time, {name}: two plain hops (socat, no TLS), median of"
                        f" the {ROUNDS} rounds' ratios to the job without them (rounds: {spread})",
                        statistics.median(plain_ratios),
                        "x",
                    )
                )
                rows.append(
                    Row(
                        "net_training",
                        f"the relays' CPU per step, {name} (both workers' relays, every step"
                        f" of the run; median of {ROUNDS} rounds)",
                        statistics.median(relay_ms),
                        "ms",
                    )
                )
        finally:
            lab.close()
    return rows

"""``securetf serve`` under ``securetf run`` beside a plain server and the bare model: the
secureTF paper's classification experiment.

Run: python -m benchmarks.run serve   (or ``make bench``; needs root, /dev/fuse, TensorFlow)

Three image classifiers of about the paper's sizes (DenseNet121, InceptionV3, ResNet101
with random weights; see ``_serve_models``), each as a SavedModel and as TF Lite, one
224x224 or 299x299 float image per request, one client sending requests one after another.
Three configurations, all in the same run and interleaved request by request:

- in-process: the model's own call (``tf.saved_model.load(...).signatures``, LiteRT's
  signature runner) in this process, without securetf;
- plain server: ``securetf serve --insecure-no-tls`` on the plain model files, outside the
  runtime, called as a TensorFlow Serving client calls it (the official gRPC stub; JSON
  rows over HTTP);
- securetf: ``securetf serve`` launched by ``securetf run`` (sim TEE, CAS-issued instance
  certificate, models loaded from a sealed volume through the file system shield), called
  through securetf's verifying ``ServingClient`` over TLS.

A fourth, ``securetf serve`` with TLS on the plain files outside the runtime, splits
what securetf adds into TLS and the runtime (whose public-port forwarding carries every
byte between the host and the server's network namespace).

Both APIs are measured: gRPC (``PredictionService/Predict``, tensors as bytes: what a
latency-minded TensorFlow Serving client uses) and REST with JSON rows (the other way TF
Serving clients send float tensors; JSON encoding then dominates the request). The p50
ratio comes with a bootstrap 95 % interval. ``SECURETF_BENCH_SERVE_ROUNDS`` sets the
number of rounds; REST takes part in every third one, or every Nth with
``SECURETF_BENCH_SERVE_REST_EVERY=N`` (1 gives REST's p50 as many samples as gRPC's, for
a narrower interval, at the cost of a longer run). The chart goes to
``docs/img/serve-bench.png`` and a per-model table to ``bench-results/serve.md``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tests.serve.support import POLICY, SERVICE, TestCa

from benchmarks._common import Row
from benchmarks._serve_deploy import Deployment, LocalServer, PlainGrpc, PlainRest
from benchmarks._serve_models import BenchModel, Native, cached, model_bytes
from benchmarks._serve_report import REST_FORMATS, chart, detail, rows
from benchmarks._serve_stats import Call, interleave
from securetf.client import ServingClient

ROUNDS = int(os.environ.get("SECURETF_BENCH_SERVE_ROUNDS", "60"))
#: REST requests are JSON-bound (about 0.5 s of encoding and parsing per image here, the
#: same for either server), so they run in every third round, for the SavedModels only:
#: the model's format makes no difference to what TLS and the runtime add to JSON.
REST_EVERY = int(os.environ.get("SECURETF_BENCH_SERVE_REST_EVERY", "3"))
REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "docs" / "img" / "serve-bench.png"
DETAIL = REPO / "bench-results" / "serve.md"
RAW = REPO / "bench-results" / "serve-times.json"
#: Built once, reused while the library versions stay the same (see ``_serve_models.cached``).
CACHE = REPO / "bench-results" / "cache" / "serve-models"


def _log(message: str) -> None:
    print(f"   serve: {message}", file=sys.stderr, flush=True)


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:.0f} s"


@dataclass
class Clients:
    """One client per server: securetf's verifying client for the two TLS servers."""

    secure: ServingClient  # securetf serve under securetf run
    tls_only: ServingClient  # securetf serve with TLS, outside the runtime
    plain_grpc: PlainGrpc
    plain_rest: PlainRest


def _calls(models: list[BenchModel], native: dict[str, Native], c: Clients) -> list[Call]:
    calls: list[Call] = []
    for m in models:
        inputs = {m.input_name: m.x}
        fns: dict[str, tuple[Callable[[], object], int]] = {
            "native": (native[m.name], 1),
            "grpc/plain": (partial(c.plain_grpc.predict, m.name, inputs), 1),
            "grpc/tls": (partial(c.tls_only.grpc_predict, m.name, inputs), 1),
            "grpc/securetf": (partial(c.secure.grpc_predict, m.name, inputs), 1),
        }
        if m.fmt in REST_FORMATS:
            fns["rest/plain"] = (partial(c.plain_rest.predict, m.name, m.x), REST_EVERY)
            fns["rest/tls"] = (partial(c.tls_only.predict, m.name, m.x), REST_EVERY)
            fns["rest/securetf"] = (partial(c.secure.predict, m.name, m.x), REST_EVERY)
        want = native[m.name]()
        for config, (fn, every) in fns.items():
            got: Any = fn()
            if isinstance(got, dict):
                (got,) = got.values()
            # Every path must answer what the model answers before its time counts.
            np.testing.assert_allclose(
                np.asarray(got, np.float32).reshape(want.shape), want, rtol=1e-4, atol=1e-6
            )
            calls.append(Call((m.name, config), fn, every))
    return calls


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="securetf-bench-serve-", dir="/tmp") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        models = cached(CACHE)
        total = model_bytes(CACHE) / 1e6
        _log(f"models ready ({total:.0f} MB in {CACHE.relative_to(REPO)}) after {_since(start)}")
        dep = Deployment.create(root / "deploy")
        ca = TestCa.create()
        plain = LocalServer(CACHE, root / "plain.log")
        tls_only = LocalServer(CACHE, root / "tls.log", tls=ca.instance(root / "tls"))
        opened: list[Any] = []
        try:
            dep.seal_and_apply(CACHE)
            # All three load their models at once (disk and FUSE reads overlap the parsing).
            plain.launch()
            tls_only.launch()
            dep.launch()
            plain.wait()
            tls_only.wait()
            secure = dep.client()
            opened.append(secure)
            _log(f"the three servers are up after {_since(start)}")
            clients = Clients(
                secure,
                ServingClient(
                    tls_only.url,
                    ca_pem=ca.pem,
                    service=SERVICE,
                    policy=POLICY,
                    grpc_address=f"127.0.0.1:{tls_only.grpc_port}",
                    timeout=120.0,
                ),
                PlainGrpc(f"127.0.0.1:{plain.grpc_port}"),
                PlainRest(plain.url),
            )
            opened += [clients.tls_only, clients.plain_grpc, clients.plain_rest]
            native = {m.name: Native(m) for m in models}
            # This process holds every model for the in-process calls, which a serving
            # client does not: keep the collector from scanning them on each JSON request.
            gc.freeze()
            times = interleave(_calls(models, native, clients), ROUNDS)
            _log(f"{ROUNDS} rounds done after {_since(start)}")
        finally:
            for client in opened:
                client.close()
            plain.stop()
            tls_only.stop()
            dep.stop()
    stamp = time.strftime("%Y-%m-%d")
    chart(CHART, models, times, stamp)
    DETAIL.parent.mkdir(exist_ok=True)
    DETAIL.write_text(detail(models, times, stamp))
    # Every sample, in the order of the rounds, for any other statistic.
    raw = {f"{name} {config}": [round(t, 6) for t in ts] for (name, config), ts in times.items()}
    RAW.write_text(json.dumps(raw, indent=0))
    _log(f"chart: {CHART.relative_to(REPO)}, per-model table: {DETAIL.relative_to(REPO)}")
    return rows(models, times)


if __name__ == "__main__":
    from benchmarks.run import table

    print(table(run()))

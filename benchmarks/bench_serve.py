"""``securetf serve`` latency and throughput beside the model in-process and plain HTTP.

One client sends requests one after another (one image or row each), so latency is the
server's added cost per request: p50/p99 over TLS (the client verifying the policy CA and
service name), over plain HTTP (the same server with ``--insecure-no-tls``), and the bare
model call in this process. A small dense model and DenseNet121 (``weights=None``, ~33 MB).
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tests.serve.support import POLICY, SERVICE, ServerProcess, TestCa

from benchmarks._common import Row
from securetf.client import ServingClient
from securetf.serve import load_model


def _models(root: Path) -> dict[str, tuple[np.ndarray[Any, Any], int]]:
    """Export the models; each with one input row and its request count."""
    import keras

    small = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64), keras.layers.Dense(10)])
    small.export(str(root / "small" / "1"), verbose=False)
    densenet = keras.applications.DenseNet121(weights=None, input_shape=(224, 224, 3))
    densenet.export(str(root / "densenet121" / "1"), verbose=False)
    rng = np.random.default_rng(0)
    return {
        "small": (rng.normal(size=(1, 32)).astype(np.float32), 300),
        "densenet121": (rng.normal(size=(1, 224, 224, 3)).astype(np.float32), 25),
    }


def _times(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm up
    fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _p(ts: list[float], q: float) -> float:
    return float(np.percentile(ts, q)) * 1000.0


def _rows(model: str, tls: list[float], plain: list[float], native: list[float]) -> list[Row]:
    out = []
    for label, q in (("p50", 50.0), ("p99", 99.0)):
        out.append(
            Row(
                "serve",
                f"{model} {label} latency, TLS vs plain HTTP",
                _p(tls, q),
                "ms",
                "plain HTTP",
                _p(plain, q),
                "<= 1.03x at p50" if q == 50 else "",
            )
        )
        out.append(
            Row(
                "serve",
                f"{model} {label} latency, TLS vs in-process",
                _p(tls, q),
                "ms",
                "in-process",
                _p(native, q),
            )
        )
    out.append(
        Row(
            "serve",
            f"{model} sequential throughput, TLS",
            1 / statistics.mean(tls),
            "req/s",
            "plain HTTP",
            1 / statistics.mean(plain),
        )
    )
    return out


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        models = _models(tmp / "models")
        ca = TestCa.create()
        tls = ServerProcess(tmp / "models", ca.instance(tmp / "tls"), ca.pem, log=tmp / "tls.log")
        plain = ServerProcess(
            tmp / "models", None, None, log=tmp / "plain.log", extra=["--insecure-no-tls"]
        )
        rows: list[Row] = []
        tls.start()
        plain.start()
        try:
            client = ServingClient(tls.url, ca_pem=ca.pem, service=SERVICE, policy=POLICY)
            with client, plain.http() as http:
                for name, (x, n) in models.items():
                    path = f"/v1/models/{name}:predict"
                    body = {"instances": x.tolist()}
                    model = load_model(tmp / "models" / name / "1")
                    (arg,) = model.signature.input_names
                    t_tls = _times(functools.partial(client.predict, name, x), n)
                    t_plain = _times(functools.partial(http.post, path, json=body), n)
                    t_native = _times(functools.partial(model.predict, {arg: x}), n)
                    rows += _rows(name, t_tls, t_plain, t_native)
        finally:
            tls.stop()
            plain.stop()
        return rows


if __name__ == "__main__":
    from benchmarks.run import table

    print(table(run()))

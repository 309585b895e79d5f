"""Where a large REST request's time goes in ``securetf serve``, with and without TLS.

Run: python -m benchmarks.serve_phases   (under ``flock /tmp/bench.lock``; not a suite)

The plain server (``--insecure-no-tls``) and the TLS server run the same code; this tool
starts both with a recorder of per-request phases (the server's own clocks: wall time,
thread CPU time, page faults) and POSTs the serve_json benchmark's 5.7 MB body to each,
interleaved, ``SECURETF_BENCH_SERVE_JSON_N`` times per pass. Per server it prints the
median of each phase: receiving the body (first byte to the last ``data_received``; the
event loop's CPU time in it), decoding and checking it (wall, CPU, page faults, the event
loop's CPU meanwhile), the model, encoding and sending the answer; and per request the
client's CPU time. docs/serving.md, "REST JSON cost", quotes it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

PASSES = 2
N = int(os.environ.get("SECURETF_BENCH_SERVE_JSON_N", "30"))
_LOG_ENV = "SECURETF_SERVE_PHASES_LOG"


def _record(log_path: str) -> None:
    """Patch the server's request path (in the server process) to log each request's phases."""
    import securetf._http.protocol as protocol
    import securetf.serve.rest as rest

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    cur: dict[str, Any] = {}

    def thread_clock() -> float:
        return time.clock_gettime(cur["loop_clock"])

    received = protocol._BoundedH11.data_received

    def data_received(self: Any, data: bytes) -> None:
        if self._made and "first" not in cur:
            cur["first"] = time.perf_counter()
            cur["loop_clock"] = time.pthread_getcpuclockid(threading.get_ident())
            cur["loop0"], cur["reads"] = thread_clock(), 0
        received(self, data)
        if "first" in cur:
            cur["last"], cur["reads"] = time.perf_counter(), cur["reads"] + 1

    handlers = vars(rest)  # the names the REST handlers call, imported into their module
    parse = handlers["parse_predict"]

    def parse_predict(body: bytes, model: Any) -> Any:
        cur["loop1"], usage = thread_clock(), resource.getrusage(resource.RUSAGE_THREAD)
        cur["parse0"], cpu = time.perf_counter(), time.thread_time()
        out = parse(body, model)
        cur["parse1"], cur["parse_cpu"] = time.perf_counter(), time.thread_time() - cpu
        cur["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - usage.ru_minflt
        cur["loop2"] = thread_clock()
        return out

    encode = handlers["encode_response"]

    def encode_response(*args: Any, **kwargs: Any) -> bytes:
        cur["enc0"] = time.perf_counter()
        out: bytes = encode(*args, **kwargs)
        cur["enc1"] = time.perf_counter()
        return out

    complete = protocol._BoundedH11.on_response_complete

    def on_response_complete(self: Any) -> None:
        done = time.perf_counter()
        complete(self)
        if "parse0" in cur:
            ms = {
                "receive": cur["last"] - cur["first"],
                "receive_loop_cpu": cur["loop1"] - cur["loop0"],
                "decode": cur["parse1"] - cur["parse0"],
                "decode_cpu": cur["parse_cpu"],
                "loop_cpu_during_decode": cur["loop2"] - cur["loop1"],
                "model": cur["enc0"] - cur["parse1"],
                "encode": cur["enc1"] - cur["enc0"],
                "send": done - cur["enc1"],
                "total": done - cur["first"],
            }
            doc = {k: v * 1e3 for k, v in ms.items()}
            doc.update(reads=cur["reads"], decode_page_faults=cur["faults"])
            log.write(json.dumps(doc) + "\n")
        cur.clear()

    protocol._BoundedH11.data_received = data_received  # type: ignore[method-assign]
    protocol._BoundedH11.on_response_complete = on_response_complete  # type: ignore[method-assign]
    handlers["parse_predict"] = parse_predict
    handlers["encode_response"] = encode_response


def _server_main(argv: list[str]) -> None:
    _record(os.environ[_LOG_ENV])
    from securetf.cli.main import main

    main(argv)


def main() -> None:
    import tests.serve.support as support

    from benchmarks.bench_serve_json import SHAPE, _image_model

    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    body = json.dumps({"instances": x.tolist()}).encode()
    headers = {"content-type": "application/json"}
    with tempfile.TemporaryDirectory(prefix="securetf-serve-phases-", dir="/tmp") as tmp:
        root = Path(tmp)
        _image_model(root / "models" / "image" / "1")
        ca = support.TestCa.create()
        pair = ca.instance(root / "tls")
        support.EXE = [sys.executable, "-m", "benchmarks.serve_phases", "--server"]
        servers = {
            "plain": support.ServerProcess(
                root / "models", None, None, log=root / "plain.log", extra=["--insecure-no-tls"]
            ),
            "tls": support.ServerProcess(
                root / "models",
                pair,
                ca.pem,
                log=root / "tls.log",
                extra=["--tls-cert", str(pair.cert), "--tls-key", str(pair.key)],
            ),
        }
        for name, server in servers.items():  # env given: start() adds no TLS flags itself
            server.start(env={_LOG_ENV: str(root / f"{name}.jsonl")})
        try:
            clients = {name: s.http() for name, s in servers.items()}
            for client in clients.values():
                for _ in range(2):  # warm: the connection, the model's first call
                    client.post("/v1/models/image:predict", content=body, headers=headers)
            for name in servers:
                (root / f"{name}.jsonl").write_text("")
            cpu: dict[str, list[float]] = {name: [] for name in servers}
            wall: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(PASSES * N):
                for name, client in clients.items():
                    start, used = time.perf_counter(), time.thread_time()
                    reply = client.post("/v1/models/image:predict", content=body, headers=headers)
                    reply.raise_for_status()
                    wall[name].append((time.perf_counter() - start) * 1e3)
                    cpu[name].append((time.thread_time() - used) * 1e3)
            for client in clients.values():
                client.close()
        finally:
            for server in servers.values():
                server.stop()
        for name in servers:
            lines = (root / f"{name}.jsonl").read_text().splitlines()
            rows = [json.loads(line) for line in lines if line]
            phases = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            print(
                f"{name}: client wall {statistics.median(wall[name]):.1f} ms, "
                f"client CPU {statistics.median(cpu[name]):.1f} ms; server (n={len(rows)}) "
                + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--server"]:
        _server_main(sys.argv[2:])
    else:
        main()

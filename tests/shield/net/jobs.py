"""The same TensorFlow job without the shield: its workers straight on the lab's hosts.

Each worker runs in its host's namespace and TensorFlow's gRPC goes in the clear over the
bridge, as it would between machines without securetf: the baseline the shielded job is
compared with (tests) and timed against (benchmarks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from .lab import ROOT, Lab

PORT = 5000


def tf_config(lab: Lab, hosts: str, index: int, port: int = PORT) -> str:
    cluster = [f"{lab.addresses[h]}:{port}" for h in hosts]
    return json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})


def run_direct(
    lab: Lab,
    hosts: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 240,
) -> list[dict[str, Any]]:
    """Worker k on host ``hosts[k]``; the last JSON line each printed, in worker order."""
    procs = [
        lab.popen(
            host,
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {}), "TF_CONFIG": tf_config(lab, hosts, k)},
            stdout=subprocess.PIPE,
        )
        for k, host in enumerate(hosts)
    ]
    try:
        return results(procs, "a worker without the shield", timeout)
    finally:
        end(procs)


def results(
    workers: list[subprocess.Popen[bytes]], what: str, timeout: float
) -> list[dict[str, Any]]:
    """The last JSON line each worker printed, in worker order; a worker that failed
    raises, naming ``what`` it was."""
    out = []
    for proc in workers:
        stdout, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{what} exited {proc.returncode}")
        out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    return out


def end(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill what still runs (each in its own session) and reap it."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def worker(steps: int, mode: str) -> list[str]:
    return [sys.executable, "-m", "tests.shield.net.tf_worker", str(steps), mode]

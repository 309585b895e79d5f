"""``make demo-distributed``: the 2-worker job end to end through the network shield.

Four "machines", each a network namespace on one bridge: the owner's, the CAS's and two
workers' hosts. A CAS starts (SQLite, simulated TEE) and the owner verifies its evidence;
the owner seals scikit-learn's breast-cancer table, applies a policy whose ``worker``
service has two instances that peer with each other, and registers the sealed table's
state; an operator starts ``securetf run --instance 0`` and ``--instance 1`` on the two
worker hosts, which run an unmodified MultiWorkerMirroredStrategy program (tf-keras
``fit``) from the sealed data, while a raw capture records worker 0's link. Then it checks
that both workers finished with identical weights, that the link carried only TLS records
and no TensorFlow gRPC in the clear, and, as a control, that the same capture of the same
job without securetf does see its gRPC (and the same weights). It prints PASS or FAIL for
each check and exits 1 if any failed. Every namespace it made is removed on exit, failed
or not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.distributed._capture import not_tls, read_frames, streams, tcp_segments
from demo.distributed._hosts import Hosts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APP = HERE / "app"
PY = sys.executable
SECURETF = [PY, "-m", "securetf.cli.main"]
POLICY_NAME = "distributed-training"
CAS_PORT, TUNNEL, PROGRAM_PORT = 8443, 7000, 5000
HOSTS = ["owner", "cas", "node0", "node1"]
WORKERS = ["node0", "node1"]
RUN_TIMEOUT = 600.0
DATA_MARKER = b"mean radius"  # a column of the dataset's header: never on the link
GRPC_MARKERS = (b"PRI * HTTP/2.0", b"/tensorflow.")  # HTTP/2's preface, TF's gRPC methods
ENV = {
    **os.environ,
    "PATH": f"{Path(PY).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
}

POLICY = """\
name: {name}
version: 1
governance:
  owners: [{{name: alice, public_key: "{alice}"}}]
  update_threshold: 1
tee:
  allow: [sim]            # development only: named explicitly
secrets:
  dataset-key: {{kind: volume-key, source: imported}}
volumes:
  dataset: {{key: dataset-key, rollback: protected}}
services:
  worker:
    measurement: "{measurement}"
    command: [python, train.py]
    instances: 2
    mounts:
      - {{volume: dataset, path: {data}, mode: ro}}
    environment:
      DATA_DIR: "{data}"
      TF_USE_LEGACY_KERAS: "1"
      TF_CPP_MIN_LOG_LEVEL: "3"
    network: {{peers: [worker], listen: [{port}]}}
"""


class StepFailedError(Exception):
    """A step the checks depend on failed: nothing after it can be verified."""


@dataclass
class Checks:
    results: list[tuple[bool, str]] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> bool:
        self.results.append((ok, what))
        print(f"{'PASS' if ok else 'FAIL'}  {what}", flush=True)
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def securetf(hosts: Hosts, host: str, *args: str | Path, expect: int = 0) -> str:
    print(f"[{host}] $ securetf " + " ".join(str(a) for a in args), flush=True)
    done = hosts.run(host, [*SECURETF, *map(str, args)], env=ENV)
    shown = [line for line in (done.stdout + done.stderr).splitlines() if "SIMULATED" not in line]
    if shown:
        print("\n".join(shown[-6:]), flush=True)
    if done.returncode != expect:
        raise StepFailedError(
            f"securetf {args[0]} {args[1]} exited {done.returncode}: {done.stderr[-800:]}"
        )
    return done.stdout


def write_dataset(directory: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    table = np.column_stack([data.data, data.target])
    directory.mkdir()
    header = ",".join([*data.feature_names, "label"])
    path = directory / "breast_cancer.csv"
    np.savetxt(path, table, delimiter=",", header=header, fmt="%.6g", comments="")


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise StepFailedError(
                f"{path.name}: exited {proc.returncode}: {path.read_text()[-1500:]}"
            )
        time.sleep(0.1)
    raise StepFailedError(f"{path.name}: no {text!r} within {seconds:.0f} s")


@contextmanager
def captured(hosts: Hosts, work: Path, name: str) -> Iterator[Path]:
    """Every frame on worker 0's bridge port while the block runs, in the yielded file."""
    out, log = work / f"{name}.frames", work / f"{name}.log"
    argv = [PY, "-m", "demo.distributed._capture", hosts.ports["node0"], str(out)]
    proc = hosts.popen("bridge", argv, log=log, env=ENV, cwd=REPO)
    wait_for(log, "capturing", proc, 30)
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def last_json(log: Path) -> dict[str, Any] | None:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                result: dict[str, Any] = json.loads(line)
                return result
            except ValueError:
                return None
    return None


def wait_workers(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> list[Any]:
    """Each worker's result (None if it failed); once one failed, the others get a minute."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.returncode not in (None, 0) for p in procs):
            deadline = min(deadline, time.monotonic() + 60)
        time.sleep(0.2)
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return [
        last_json(log) if p.returncode == 0 else None for p, log in zip(procs, logs, strict=True)
    ]


def why_failed(log: Path) -> str:
    """The last error line of a worker's log (or its last line)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return (errors or lines or ["(no output)"])[-1][:400]


def grpc_in_clear(frames: list[bytes]) -> bool:
    return any(m in f for f in frames for m in GRPC_MARKERS)


def verify_link(checks: Checks, hosts: Hosts, frames: list[bytes]) -> None:
    workers = {hosts.addresses[h] for h in WORKERS}
    between = [
        (key, payload)
        for key, _, payload in tcp_segments(frames)
        if payload and key[0] in workers and key[2] in workers
    ]
    carried = sum(len(p) for _, p in between)
    ports = sorted({port for key, _ in between for port in (key[1], key[3]) if port < 32768})
    checks.check(
        carried > 10_000 and ports == [TUNNEL],
        f"the capture saw {carried:,} bytes between the workers' hosts, all to or from the "
        f"runtimes' tunnel port (server ports seen: {ports})",
    )
    data = streams(frames)
    wrong = {k: why for k, s in data.items() if (why := not_tls(s)) is not None}
    checks.check(
        bool(data) and not wrong,
        f"every one of the {len(data)} TCP streams on worker 0's link is TLS records only"
        + (f"; not TLS: {wrong}" if wrong else ""),
    )
    checks.check(
        not grpc_in_clear(frames) and not any(DATA_MARKER in f for f in frames),
        "no plaintext on the link: no HTTP/2 preface, no /tensorflow. gRPC method, "
        "no text of the dataset",
    )


def shielded_job(checks: Checks, hosts: Hosts, work: Path, url: str) -> list[Any]:
    step("4. the operator runs the unmodified program under securetf run, one per worker host")
    peers = [f"--peer=worker-{k}={hosts.addresses[h]}:{TUNNEL}" for k, h in enumerate(WORKERS)]
    logs = [work / f"worker-{k}.log" for k in range(len(WORKERS))]
    with captured(hosts, work, "shielded") as frames_file:
        procs = []
        for k, host in enumerate(WORKERS):
            args = ["run", "--cas", url, "--policy", POLICY_NAME, "--service", "worker"]
            args += ["--app", str(APP), "--volume", f"dataset={work / 'sealed-dataset'}"]
            args += ["--instance", str(k), *peers]
            print(f"[{host}] $ securetf {' '.join(args)} &", flush=True)
            procs.append(hosts.popen(host, [*SECURETF, *args], log=logs[k], env=ENV, cwd=work))
        results = wait_workers(procs, logs)
    step("5. what the demo verifies")
    for k, (proc, result) in enumerate(zip(procs, results, strict=True)):
        detail = json.dumps(result) if result else why_failed(logs[k])
        checks.check(
            proc.returncode == 0 and result is not None,
            f"worker {k} finished under securetf run (exit {proc.returncode}): {detail}",
        )
    if all(results):
        digests = {r["weights_sha256"] for r in results}
        checks.check(len(digests) == 1, f"both workers end with identical weights: {digests}")
        accuracy = min(r["test_accuracy"] for r in results)
        checks.check(accuracy >= 0.9, f"the model learned: held-out accuracy {accuracy:.3f}")
    verify_link(checks, hosts, read_frames(frames_file))
    return results


def control_job(checks: Checks, hosts: Hosts, work: Path, shielded: list[Any]) -> None:
    step("6. control: the same program without securetf, captured the same way")
    cluster = [f"{hosts.addresses[h]}:{PROGRAM_PORT}" for h in WORKERS]
    logs = [work / f"plain-{k}.log" for k in range(len(WORKERS))]
    with captured(hosts, work, "plain") as frames_file:
        procs = []
        for k, host in enumerate(WORKERS):
            task = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": k}}
            env = ENV | {"TF_CONFIG": json.dumps(task), "DATA_DIR": str(work / "data")}
            env |= {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            print(f"[{host}] $ python train.py   (TF_CONFIG: {cluster}, task {k})", flush=True)
            procs.append(hosts.popen(host, [PY, "train.py"], log=logs[k], env=env, cwd=APP))
        plain = wait_workers(procs, logs)
    frames = read_frames(frames_file)
    checks.check(
        grpc_in_clear(frames),
        "without securetf, the same capture sees TensorFlow's gRPC in the clear "
        "(so the check above would have caught it)",
    )
    if not checks.check(all(plain), "both workers of the job without securetf finished"):
        return
    if all(shielded):
        same = plain[0]["weights_sha256"] == shielded[0]["weights_sha256"]
        checks.check(same, "the shielded job's weights equal those of the job without securetf")


def setup(hosts: Hosts, work: Path) -> str:
    """Steps 1 to 3: the hosts, an attested CAS, sealed data and the policy; the CAS's URL."""
    step("1. four hosts on a bridge, each a network namespace: owner, CAS, two workers")
    hosts.start(HOSTS)
    for name in HOSTS:
        print(f"{name}: {hosts.addresses[name]} (namespace {hosts.namespaces[name]})")

    step("2. a CAS starts on its host (SQLite, simulated TEE); the owner verifies it")
    url = f"https://{hosts.addresses['cas']}:{CAS_PORT}"
    serve = ["cas", "serve", "--data-dir", str(work / "cas"), "--listen", url[8:]]
    cas = hosts.popen("cas", [*SECURETF, *serve], log=work / "cas.log", env=ENV, cwd=work)
    wait_for(work / "cas.log", "listening", cas, 60)
    securetf(hosts, "owner", "cas", "attest", "--cas", url, "--allow-sim")

    step("3. the owner seals the training data, measures the program, applies the policy")
    write_dataset(work / "data")
    alice = securetf(hosts, "owner", "owner", "keygen", work / "alice.key").strip()
    key = work / "dataset.key"
    securetf(hosts, "owner", "volume", "keygen", key)
    securetf(
        hosts, "owner", "volume", "seal", work / "data", work / "sealed-dataset", "--key-file", key
    )
    policy = work / "policy.yaml"
    fields = {"name": POLICY_NAME, "alice": alice, "data": work / "mnt" / "data"}
    fields["port"] = PROGRAM_PORT
    policy.write_text(POLICY.format(measurement="sha256:" + "0" * 64, **fields))
    measurement = securetf(
        hosts, "owner", "measure", "--app", APP, "--policy", policy, "--service", "worker"
    ).strip()
    policy.write_text(POLICY.format(measurement=measurement, **fields))
    print(policy.read_text())
    securetf(
        hosts,
        "owner",
        "policy",
        "apply",
        "--yes",
        policy,
        "--cas",
        url,
        "--key",
        work / "alice.key",
        "--secret",
        f"dataset-key={key}",
    )
    # rollback: protected: the workers open the dataset only in the state its owner registered
    volume: list[str | Path] = [work / "sealed-dataset", "--volume", "dataset", "--key-file", key]
    owner: list[str | Path] = ["--policy", POLICY_NAME, "--cas", url, "--key", work / "alice.key"]
    securetf(hosts, "owner", "volume", "register", *volume, *owner)
    return url


def preflight() -> str | None:
    if os.geteuid() != 0:
        return "run as root (network namespaces, nftables, FUSE)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} (make setup installs it)"
    for module in ("tensorflow", "tf_keras", "sklearn"):
        try:
            __import__(module)
        except ImportError:
            return f"needs the Python package {module!r} (make setup installs it)"
    return None


def main() -> int:
    if (why := preflight()) is not None:
        print(f"demo-distributed: {why}", file=sys.stderr)
        return 1
    # SIGTERM ends the demo like Ctrl-C: through the finally below, which cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="securetf-demo-distributed-"))
    ENV["SECURETF_HOME"] = str(work / "home")
    hosts, checks = Hosts(), Checks()
    try:
        url = setup(hosts, work)
        shielded = shielded_job(checks, hosts, work, url)
        control_job(checks, hosts, work, shielded)
    except StepFailedError as exc:
        checks.check(False, f"the demo could not go on: {exc}")
    finally:
        left = hosts.close()
        shutil.rmtree(work, ignore_errors=True)
        step("7. clean-up")
        checks.check(
            not left,
            f"every namespace of the demo removed, its processes stopped (left: {left or 'none'})",
        )
    failed = [what for ok, what in checks.results if not ok]
    print(f"\n{len(checks.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 0 if checks.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``securetf run`` with the network shield: two instances of a service, a real CAS.

Both runtimes run in this (the test's) network namespace and accept tunnels on loopback
ports; each program runs in its own namespace with only loopback, and reaches the other
only through the shield (docs/net-shield.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from securetf.runtime import measure, measurement_text
from tests.cas.server_support import EXE
from tests.ports import free_port

from .support import REPO, RUN_TIMEOUT_S, VENV_BIN, Deployment

APPS = REPO / "tests" / "shield" / "net"


def _job(
    dep: Deployment,
    tmp: Path,
    command: list[str],
    files: dict[str, Path],
    environment: dict[str, str] | None = None,
) -> str:
    """A policy with one two-instance service that peers with itself on port 5000."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", **(environment or {})}
    app = tmp / "app"
    app.mkdir()
    for name, source in files.items():
        (app / name).write_text(source.read_text())
    name = f"t{os.urandom(5).hex()}"
    policy = tmp / "policy.yaml"
    policy.write_text(
        "\n".join(
            [
                f"name: {name}",
                "version: 1",
                "governance:",
                f'  owners: [{{name: alice, public_key: "{dep.owner_public}"}}]',
                "  update_threshold: 1",
                "tee: {allow: [sim]}",
                "services:",
                "  worker:",
                f'    measurement: "{measurement_text(measure(app, command))}"',
                f"    command: {json.dumps(command)}",
                "    instances: 2",
                "    network: {peers: [worker], listen: [5000]}",
                f"    environment: {json.dumps(env)}",
                "",
            ]
        )
    )
    dep.cli("policy", "apply", "--yes", policy, "--cas", dep.cas.url, "--key", dep.owner_key)
    return name


def _start(
    dep: Deployment, policy: str, app: Path, instance: int, ports: Sequence[int]
) -> subprocess.Popen[str]:
    """``securetf run`` of worker ``instance``; worker-k's runtime accepts at ``ports[k]``."""
    env = dep.cas.env()
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    peers = [f"--peer=worker-{k}=127.0.0.1:{p}" for k, p in enumerate(ports)]
    args = ["run", "--cas", dep.cas.url, "--policy", policy, "--service", "worker"]
    args += ["--app", str(app), "--instance", str(instance), *peers]
    return subprocess.Popen(
        [*EXE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _verdict(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The program's last line, as JSON, once the run ended well."""
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _run_both(dep: Deployment, policy: str, app: Path) -> list[dict[str, Any]]:
    ports = [free_port(), free_port()]
    procs = [_start(dep, policy, app, k, ports) for k in range(2)]
    return [_verdict(proc) for proc in procs]


def test_two_instances_talk_only_through_the_shield(deployment: Deployment, tmp_path: Path) -> None:
    # Instance 1 echoes one connection; instance 0 sends through the tunnel and then probes
    # the CAS's own address: on the host's loopback, which the program must not reach.
    script = (
        "import json, os, sys, apps\n"
        "if json.loads(os.environ['TF_CONFIG'])['task']['index'] == 1:\n"
        "    apps.echo(5000, 1); print(json.dumps({'result': 'served'}))\n"
        "else:\n"
        "    v = apps.send('worker', 1, 1 << 20, b'runtime-marker')\n"
        "    v['probe'] = apps.probe([sys.argv[1]]); print(json.dumps(v))\n"
    )
    (tmp_path / "main.py").write_text(script)
    cas = deployment.cas.url.split("//", 1)[1]
    command = ["python", "main.py", cas]
    policy = _job(
        deployment,
        tmp_path,
        command,
        {"main.py": tmp_path / "main.py", "apps.py": APPS / "apps.py"},
    )
    sent, served = _run_both(deployment, policy, tmp_path / "app")
    assert served == {"result": "served"}
    assert sent["result"] == "ok", sent
    # 127.0.0.1 in the program's namespace is its own loopback: the CAS is not there.
    assert sent["probe"][cas].startswith("refused"), sent


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["loop", "fit"])
def test_multi_worker_training_identical_weights(
    deployment: Deployment, tmp_path: Path, mode: str
) -> None:
    pytest.importorskip("tensorflow")
    # tf-keras: Keras 3's fit does not run under MultiWorkerMirroredStrategy (keras#20585).
    env = {"TF_USE_LEGACY_KERAS": "1"} if mode == "fit" else {}
    if mode == "fit":
        pytest.importorskip("tf_keras")
    command = ["python", "worker.py", "20", mode]
    policy = _job(deployment, tmp_path, command, {"worker.py": APPS / "tf_worker.py"}, env)
    first, second = _run_both(deployment, policy, tmp_path / "app")
    assert first["weights"] == second["weights"]
    assert first["loss"] == pytest.approx(second["loss"])


def _accepting(proc: subprocess.Popen[str], port: int) -> None:
    """Wait until the runtime accepts tunnels: it has been provisioned."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-3000:])
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, "the runtime never accepted tunnels"
        time.sleep(0.2)


def test_a_live_instance_refuses_the_superseded_runtime_of_its_peer(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Attack: worker-0 is started twice; the first runtime, superseded at the CAS by the
    second, still holds a certificate of the policy's CA for worker-0 and keeps accepting
    tunnels. Worker-1's runtime, sent to it, gives its program's connection nothing; sent to
    the live worker-0, the same program is served."""
    script = (
        "import json, os, apps\n"
        "if json.loads(os.environ['TF_CONFIG'])['task']['index'] == 0:\n"
        "    apps.echo(5000, 0)\n"
        "else:\n"
        "    print(json.dumps(apps.send('worker', 0, 1 << 16, b'revocation-marker')))\n"
    )
    (tmp_path / "main.py").write_text(script)
    files = {"main.py": tmp_path / "main.py", "apps.py": APPS / "apps.py"}
    policy = _job(deployment, tmp_path, ["python", "main.py"], files)
    app = tmp_path / "app"
    old, new, one = free_port(), free_port(), free_port()
    first = _start(deployment, policy, app, 0, [old, one])
    second = None
    try:
        _accepting(first, old)
        second = _start(deployment, policy, app, 0, [new, one])  # supersedes the first
        _accepting(second, new)
        refused = _verdict(_start(deployment, policy, app, 1, [old, one]))
        served = _verdict(_start(deployment, policy, app, 1, [new, one]))
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
    assert refused["result"] == "closed", refused
    assert refused["received"] == 0
    assert served["result"] == "ok", served

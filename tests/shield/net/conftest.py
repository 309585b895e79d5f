"""Hosts on a bridge, a policy CA, and shielded instances started as separate processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from securetf.protocol.messages import NetworkGrant, PeerService

from .jobs import end
from .lab import ROOT, Lab, namespaces
from .node import node_config
from .pki import Pki

PORT = 5000  # the program's listen port
TUNNEL = 7000  # where each runtime accepts tunnels
PY = sys.executable

Node = subprocess.Popen[bytes]
StartNode = Callable[..., Node]


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if (why := _usable()) is not None:
        pytest.skip(why)
    the_lab = Lab()
    try:
        yield the_lab.start(["a", "b", "c"])
    finally:
        the_lab.close()
    left = {n for n in namespaces() if n.startswith(the_lab.prefix)}
    assert not left, f"namespaces of the test were left behind: {left}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def workers(instances: int = 2, *, peers: tuple[str, ...] = ("worker",)) -> NetworkGrant:
    """Service ``worker``: peers with itself, listens on PORT."""
    return NetworkGrant(
        peers=list(peers),
        listen=[PORT],
        cluster={"worker": PeerService(instances=instances, listen=[PORT])},
    )


def peer_map(lab: Lab, instances: int = 2, *, where: dict[int, str] | None = None) -> list[str]:
    """worker-K at host a, b, c... (or as ``where`` says)."""
    hosts = where or {k: "abc"[k] for k in range(instances)}
    return [f"worker-{k}={lab.addresses[h]}:{TUNNEL}" for k, h in hosts.items()]


def app(*args: str | int) -> list[str]:
    return [PY, "-m", "tests.shield.net.apps", *map(str, args)]


@pytest.fixture
def start_node(lab: Lab, pki: Pki, tmp_path: Path) -> Iterator[StartNode]:
    """Start a shielded instance in a host; every node is killed when the test ends."""
    started: list[Node] = []

    def start(host: str, instance: int, command: list[str], **kw: Any) -> Node:
        kw.setdefault("network", workers())
        kw.setdefault("peers", peer_map(lab))
        kw.setdefault("identity", pki.identity("worker", instance))
        kw.setdefault("registry", pki.registry)
        cfg = node_config(service="worker", instance=instance, command=command, **kw)
        path = tmp_path / f"node-{host}-{instance}-{len(started)}.json"
        path.write_text(json.dumps(cfg))
        node = lab.popen(
            host,
            [PY, "-m", "tests.shield.net.node", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        started.append(node)
        return node

    yield start
    end(started)


def verdict(node: Node, timeout: float = 60) -> dict[str, Any]:
    out, _ = node.communicate(timeout=timeout)
    lines = out.decode().strip().splitlines()
    assert lines, f"the program printed nothing (exit {node.returncode})"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def wait_for_tunnel_port(lab: Lab, host: str, timeout: float = 30) -> None:
    """Until the runtime on ``host`` accepts tunnels (probed from host c, then closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(lab.socket("c")) as probe:
            if probe.connect_ex((lab.addresses[host], TUNNEL)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the runtime on host {host} never accepted tunnels")


def wait_for_tunnel(lab: Lab, client: str, server: str, timeout: float = 60) -> None:
    """Until a tunnel from ``client``'s runtime to ``server``'s is established."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "netns", "exec", lab.hosts[server], "ss", "-Htn", "state", "established"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if any(
            f"{lab.addresses[server]}:{TUNNEL}" in line and f"{lab.addresses[client]}:" in line
            for line in out.splitlines()
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"no tunnel from host {client} to host {server} came up")

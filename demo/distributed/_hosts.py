"""The demo's "machines": network namespaces on one bridge, all removed afterwards.

Every address lives inside namespaces the demo creates (10.231.9.0/24 on a bridge that is
itself in a namespace); nothing of the host's own network is touched. ``Hosts.close``
kills what the demo started in them and deletes every namespace, veths included.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.231.9"


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass
class Hosts:
    prefix: str = field(default_factory=lambda: f"stfdemo{os.getpid() % 100000}")
    namespaces: dict[str, str] = field(default_factory=dict)  # host -> namespace
    addresses: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)  # host -> its port on the bridge
    _created: list[str] = field(default_factory=list)
    _started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-bridge"

    def start(self, names: list[str]) -> Hosts:
        self._add(self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        for k, name in enumerate(names, start=1):
            ns, port = f"{self.prefix}-{name}", f"p{k}"
            self._add(ns)
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port)
            ip("-n", ns, "link", "set", port, "netns", self.bridge)
            ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{SUBNET}.{k}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            self.namespaces[name], self.addresses[name], self.ports[name] = (
                ns,
                f"{SUBNET}.{k}",
                port,
            )
        return self

    def _add(self, ns: str) -> None:
        ip("netns", "add", ns)
        self._created.append(ns)

    def popen(
        self, host: str, argv: list[str], *, log: Path, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        """``argv`` inside ``host`` (or ``'bridge'``), its output to ``log``; killed by close."""
        ns = self.bridge if host == "bridge" else self.namespaces[host]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self._started.append(proc)
        return proc

    def run(
        self, host: str, argv: list[str], *, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        ns = self.namespaces[host]
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], env=env, capture_output=True, text=True, check=False
        )

    def close(self) -> list[str]:
        """Stop every process started here, delete every namespace; what is left (none)."""
        for proc in self._started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._started.clear()
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self._created.clear()
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        )
        return [
            line.split()[0] for line in listed.stdout.splitlines() if line.startswith(self.prefix)
        ]

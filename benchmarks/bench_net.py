"""Throughput and round trip of the network shield's tunnel, beside plain TCP, direct TLS and
Debian's stunnel4, all in the same run.

Run: python -m benchmarks.run net   (or ``make bench``; needs root, ip, nft, stunnel4)

Two hosts are network namespaces on a bridge (tests/shield/net/lab.py). The same two
programs (benchmarks/_net_apps.py) measure every kind: one stream of BYTES, 4 parallel
streams of BYTES/4, and the median of PINGS one-byte round trips, the server on host b and
the driver on host a.

- plain TCP: the driver connects straight to the server across the bridge.
- direct TLS: both programs speak TLS 1.3 themselves (one encryption, one decryption).
- stunnel: stunnel4 on host a encrypts, stunnel4 on host b decrypts: TLS 1.3 with mutual
  certificates between two tunnel processes, the programs in plain TCP to them (two hops).
- securetf: each program behind a NetShield, as ``securetf run`` starts it
  (tests/shield/net/node.py): the driver in its own namespace reaches the server's virtual
  address, the runtimes carry it over mutual TLS 1.3 (two hops, like stunnel), the bytes
  copied by the compiled relay (securetf-relay, the default data path).
- securetf (python): the same, with the Python data path (threads over memory BIOs), the
  data path before ADR 0017, for comparison.
- securetf (public port): a program behind a NetShield serves TLS itself on a public port
  (as ``securetf serve`` does under ``securetf run``); the runtime's relay copies the
  connection in and out of the program's namespace. The driver, outside any shield, speaks
  TLS to it: direct TLS plus one plain copy, which is what serving under the runtime adds
  to serving with TLS alone.
- two plain hops (socat): socat on host a and on host b copy the same two hops in the
  clear, 256 KiB per read, no Nagle: what any two user-space relays cost on this machine
  before a byte is encrypted, the ceiling of a two-relay design such as the shield's or
  stunnel's.

Every program, tunnel and runtime shares the machine's two cores. The kinds alternate, in a
rotated order, ROUNDS times; each figure is the median of its rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.shield.net.lab import ROOT, Lab
from tests.shield.net.node import node_config
from tests.shield.net.pki import Pki

from benchmarks._common import Row
from benchmarks._net_apps import ANSWER, REQUEST
from securetf.protocol.messages import NetworkGrant, PeerService
from securetf.shield.net import Identity, virtual_address

ROUNDS = 3
BYTES = 512 * 1024 * 1024
PINGS = 2000
PORT, TLS_PORT, STUNNEL_IN, STUNNEL_OUT, TUNNEL = 5000, 5001, 7100, 7101, 7000
SOCAT_IN, SOCAT_OUT, PUBLIC_PORT = 7200, 7201, 5002
SOCAT = "two plain hops (socat)"
PUBLIC = "securetf (public port)"
KINDS = ["plain TCP", "direct TLS", "stunnel", "securetf", "securetf (python)", SOCAT, PUBLIC]
APPS = [sys.executable, "-m", "benchmarks._net_apps"]


class _Bench:
    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        pki = Pki(work / "pki")
        self.ids = {k: pki.identity("worker", k) for k in (0, 1)}
        self.registry = pki.registry  # the CAS's liveness answers, without a CAS
        self.b_addr = lab.addresses["b"]
        self.background: list[subprocess.Popen[bytes]] = []

    # -- long-lived pieces on host b (plain server, TLS server, stunnel server) --------------

    def start_servers(self) -> None:
        self._spawn("b", [*APPS, "serve", str(PORT)])
        self._spawn("b", [*APPS, "serve", str(TLS_PORT), str(self._dir(1))])
        stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
        if stunnel is None:
            raise RuntimeError("stunnel4 is missing: make setup installs Debian's stunnel4")
        self._spawn("b", [stunnel, str(self._stunnel_conf("b"))])
        self._spawn("a", [stunnel, str(self._stunnel_conf("a"))])
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("socat is missing: make setup installs Debian's socat")
        copy = [socat, "-b", "262144"]
        inbound = f"TCP-LISTEN:{SOCAT_IN},bind={self.b_addr},fork,reuseaddr,nodelay"
        self._spawn("b", [*copy, inbound, f"TCP:127.0.0.1:{PORT},nodelay"])
        outbound = f"TCP-LISTEN:{SOCAT_OUT},bind=127.0.0.1,fork,reuseaddr,nodelay"
        self._spawn("a", [*copy, outbound, f"TCP:{self.b_addr}:{SOCAT_IN},nodelay"])
        server = [*APPS, "serve", str(PUBLIC_PORT), str(self._dir(1))]
        grant = NetworkGrant(public=[PUBLIC_PORT])
        self.background.append(self._node("b", 1, server, "native", grant, []))
        time.sleep(1.5)
        self._wait_listening("b", PUBLIC_PORT)

    def _wait_listening(self, host: str, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock = self.lab.socket(host)
            try:
                sock.connect((self.lab.addresses[host], port))
                return
            except OSError:
                time.sleep(0.2)
            finally:
                sock.close()
        raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f} s")

    def _spawn(self, host: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = self.lab.popen(
            host, argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.background.append(proc)
        return proc

    def _dir(self, instance: int) -> Path:
        return self.ids[instance].certificate.parent

    def _stunnel_conf(self, host: str) -> Path:
        ident = self.ids[0 if host == "a" else 1]
        common = [
            "foreground = yes",
            f"pid = {self.work}/stunnel-{host}.pid",
            "debug = 3",
            f"[{host}]",
            f"cert = {ident.certificate}",
            f"key = {ident.key}",
            f"CAfile = {ident.ca}",
            "sslVersionMin = TLSv1.3",
        ]
        if host == "a":  # the client side: plain in on loopback, TLS out to host b
            common += [
                "client = yes",
                f"accept = 127.0.0.1:{STUNNEL_OUT}",
                f"connect = {self.b_addr}:{STUNNEL_IN}",
                "verifyChain = yes",
                "checkHost = worker-1.pol",
            ]
        else:
            common += [
                f"accept = {self.b_addr}:{STUNNEL_IN}",
                f"connect = 127.0.0.1:{PORT}",
                "verifyChain = yes",
            ]
        path = self.work / f"stunnel-{host}.conf"
        path.write_text("\n".join(common) + "\n")
        return path

    def stop(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # -- one measurement of each kind ---------------------------------------------------------

    def _drive(self, host: str, target: str, port: int, *tls: str) -> dict[str, float]:
        argv = [*APPS, "drive", target, str(port), str(BYTES), str(PINGS), *tls]
        done = subprocess.run(
            ["ip", "netns", "exec", self.lab.hosts[host], *argv],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=600,
        )
        result: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def measure(self, kind: str) -> dict[str, float]:
        if kind == "plain TCP":
            return self._drive("a", self.b_addr, PORT)
        if kind == "direct TLS":
            return self._drive("a", self.b_addr, TLS_PORT, str(self._dir(0)), "worker-1.pol")
        if kind == "stunnel":
            return self._drive("a", "127.0.0.1", STUNNEL_OUT)
        if kind == SOCAT:
            return self._drive("a", "127.0.0.1", SOCAT_OUT)
        if kind == PUBLIC:
            return self._drive("a", self.b_addr, PUBLIC_PORT, str(self._dir(1)), "worker-1.pol")
        return self._shielded("python" if kind == "securetf (python)" else "native")

    def _node(
        self,
        host: str,
        instance: int,
        command: list[str],
        data_path: str,
        network: NetworkGrant | None = None,
        peers: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        network = network or NetworkGrant(
            peers=["worker"],
            listen=[PORT],
            cluster={"worker": PeerService(instances=2, listen=[PORT])},
        )
        if peers is None:
            peers = [f"worker-{k}={self.lab.addresses[h]}:{TUNNEL}" for k, h in enumerate("ab")]
        ident: Identity = self.ids[instance]
        cfg: dict[str, Any] = node_config(
            network=network,
            service="worker",
            instance=instance,
            identity=ident,
            registry=self.registry,
            peers=peers,
            command=command,
            patience=30.0,
            data_path=data_path,
        )
        path = self.work / f"node-{host}.json"
        path.write_text(json.dumps(cfg))
        return self.lab.popen(
            host,
            [sys.executable, "-m", "tests.shield.net.node", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def _shielded(self, data_path: str) -> dict[str, float]:
        server = self._node("b", 1, [*APPS, "serve", str(PORT)], data_path)
        target = virtual_address(0, 1)  # worker-1 as the program sees it
        drive = [*APPS, "drive", target, str(PORT), str(BYTES), str(PINGS)]
        driver = self._node("a", 0, drive, data_path)
        try:
            out, _ = driver.communicate(timeout=600)
        finally:
            for proc in (driver, server):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
        if driver.returncode != 0:
            raise RuntimeError(f"the shielded driver failed (exit {driver.returncode})")
        result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
        return result


REQUEST_SIZES = (
    f"request {REQUEST // 1024} KiB, answer {ANSWER // 1000} kB"
    " (an image classifier's call), median of each run's median"
)
REQUEST_WHAT = f"tunnel, {REQUEST_SIZES}"


def _rows(results: dict[str, list[dict[str, float]]]) -> list[Row]:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    def row(what: str, key: str, base: str, target: str = "", unit: str = "GB/s") -> Row:
        return Row("net", what, med("securetf", key), unit, base, med(base, key), target)

    added = med("securetf", "rtt_us") - med("plain TCP", "rtt_us")
    stunnel_added = med("stunnel", "rtt_us") - med("plain TCP", "rtt_us")
    python_added = med("securetf (python)", "rtt_us") - med("plain TCP", "rtt_us")
    return [
        row("tunnel, 1 stream", "one", "stunnel", ">= 1.5"),
        row("tunnel, 1 stream", "one", "direct TLS", ">= 0.8"),
        row("tunnel, 1 stream", "one", "plain TCP"),
        row("tunnel, 1 stream", "one", "securetf (python)"),
        row("tunnel, 1 stream", "one", SOCAT),
        row("tunnel, 4 streams", "four", "stunnel", ">= 1.5"),
        row("tunnel, 4 streams", "four", "direct TLS"),
        row("tunnel, 4 streams", "four", "securetf (python)"),
        row("tunnel, 4 streams", "four", SOCAT),
        Row("net", "added round trip (1 byte)", added, "us", "stunnel", stunnel_added, "<= 1"),
        Row("net", "added round trip (1 byte)", added, "us", "securetf (python)", python_added, ""),
        row(REQUEST_WHAT, "request_us", "direct TLS", unit="us"),
        row(REQUEST_WHAT, "request_us", "stunnel", unit="us"),
        Row(
            "net",
            f"public port (securetf serve under securetf run): {REQUEST_SIZES}",
            med(PUBLIC, "request_us"),
            "us",
            "direct TLS",
            med("direct TLS", "request_us"),
        ),
        Row(
            "net",
            f"public port, time added to each request: {REQUEST_SIZES}",
            med(PUBLIC, "request_us") - med("direct TLS", "request_us"),
            "us",
        ),
    ]


def run() -> list[Row]:
    if os.geteuid() != 0:
        print("net: skipped (needs root)", file=sys.stderr)
        return []
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    lab = Lab()
    with tempfile.TemporaryDirectory(prefix="securetf-bench-net-") as tmp:
        bench: _Bench | None = None
        try:
            bench = _Bench(lab.start(["a", "b"]), Path(tmp))
            bench.start_servers()
            for turn in range(ROUNDS):
                for kind in KINDS[turn % len(KINDS) :] + KINDS[: turn % len(KINDS)]:
                    results[kind].append(bench.measure(kind))
                    print(f"net: {kind}: {results[kind][-1]}", file=sys.stderr, flush=True)
        finally:
            if bench is not None:
                bench.stop()
            lab.close()
    return _rows(results)


if __name__ == "__main__":
    for r in run():
        print(r)

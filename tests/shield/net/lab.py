"""Separate "hosts" on this machine: network namespaces on one bridge, removed afterwards.

Every address used lives inside namespaces the test created; nothing touches the host's own
network. ``Lab.close`` removes every namespace (their veths and nftables tables go with them).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from demo.distributed._capture import streams, tcp_segments

from securetf.shield.net import _netns

__all__ = [
    "SERVER_NAME",
    "Capture",
    "Lab",
    "client_hello",
    "namespaces",
    "streams",
    "tcp_segments",
    "tls_records",
]
_count = itertools.count()
SUBNET = "10.231.7"
SUBNET6 = "fd00:231:7::"  # a unique local prefix, inside the lab's namespaces only
SO_RCVBUFFORCE = 33  # socket.h; missing from Python's socket module


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: f"stf{os.getpid() % 100000}n{next(_count)}")
    hosts: dict[str, str] = field(default_factory=dict)  # name -> namespace
    addresses: dict[str, str] = field(default_factory=dict)
    addresses6: dict[str, str] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}br"

    def start(self, names: list[str]) -> Lab:
        self._add(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for k, name in enumerate(names, start=1):
            ns = f"{self.prefix}{name}"
            self._add(ns)
            port = f"p{k}"
            ip(
                "-n",
                ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                self.bridge_ns,
            )
            ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{SUBNET}.{k}/24", "dev", "eth0")
            ip("-n", ns, "addr", "add", f"{SUBNET6}{k}/64", "dev", "eth0", "nodad")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            self.hosts[name] = ns
            self.addresses[name] = f"{SUBNET}.{k}"
            self.addresses6[name] = f"{SUBNET6}{k}"
        return self

    def _add(self, ns: str) -> None:
        ip("netns", "add", ns)
        self._namespaces.append(ns)

    def close(self) -> None:
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self._namespaces.clear()

    def socket(self, host: str, family: int = socket.AF_INET) -> socket.socket:
        """A blocking TCP socket inside a host (or the bridge, for ``host='bridge'``)."""
        ns = self.bridge_ns if host == "bridge" else self.hosts[host]
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            sock = _netns.socket_inside(fd, family)
        finally:
            os.close(fd)
        sock.setblocking(True)
        return sock

    def popen(self, host: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            ["ip", "netns", "exec", self.hosts[host], *argv], start_new_session=True, **kw
        )


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


class Capture:
    """Every frame on host a's link (its bridge port), from a raw AF_PACKET socket.

    Frames switched between bridge ports never pass the bridge device itself, so the capture
    listens on the port of host a, which every tunnel of these tests crosses.
    """

    def __init__(self, lab: Lab) -> None:
        fd = os.open(f"/run/netns/{lab.bridge_ns}", os.O_RDONLY)
        try:
            with _netns.inside(fd):
                self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        finally:
            os.close(fd)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 * 1024 * 1024)
        self._sock.bind(("p1", 0))
        self._sock.settimeout(0.2)
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.frames.append(self._sock.recv(262144))
            except TimeoutError:
                continue

    def stop(self) -> list[bytes]:
        self._stop.set()
        self._thread.join()
        self._sock.close()
        return self.frames


def tls_records(data: bytes) -> list[int]:
    """The content types of the TLS records ``data`` consists of; raise if it is not TLS."""
    types, at = [], 0
    while at + 5 <= len(data):
        kind, version, length = (
            data[at],
            data[at + 1 : at + 3],
            int.from_bytes(data[at + 3 : at + 5], "big"),
        )
        if kind not in (20, 21, 22, 23) or version not in (b"\x03\x01", b"\x03\x03"):
            raise ValueError(f"not a TLS record at byte {at}: {data[at : at + 5].hex()}")
        if length > 2**14 + 256:
            raise ValueError(f"TLS record too long at byte {at}")
        types.append(kind)
        at += 5 + length
    return types


#: The TLS extension that carries the server's name in clear (RFC 6066, 3).
SERVER_NAME = 0


def client_hello(stream: bytes) -> dict[int, bytes] | None:
    """The extensions of the TLS ClientHello that opens ``stream`` (None: it opens with
    none), by type. RFC 8446, 4.1.2: the ClientHello is sent in clear."""
    if len(stream) < 9 or stream[0] != 22 or stream[5] != 1:  # handshake record, ClientHello
        return None
    body = stream[9 : 5 + int.from_bytes(stream[3:5], "big")]
    at = 2 + 32  # legacy_version, random
    at += 1 + body[at]  # legacy_session_id
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher_suites
    at += 1 + body[at]  # legacy_compression_methods
    end = at + 2 + int.from_bytes(body[at : at + 2], "big")
    at += 2
    extensions: dict[int, bytes] = {}
    while at + 4 <= end:
        kind, size = (
            int.from_bytes(body[at : at + 2], "big"),
            int.from_bytes(body[at + 2 : at + 4], "big"),
        )
        extensions[kind] = body[at + 4 : at + 4 + size]
        at += 4 + size
    return extensions


ROOT = Path(__file__).resolve().parents[3]

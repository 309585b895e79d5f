"""Slow, idle, greedy and oversized clients, written as raw sockets so nothing is polite.

Each helper returns what happened (how long the server kept the connection, what it
answered), so a test can assert generous upper bounds instead of tight timings.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

#: The longest any test waits for a server to act on a limit of a few seconds: an upper
#: bound far above the limits the tests set, so a loaded machine does not make them flaky.
PATIENCE_S = 20.0


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool = True

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


@contextmanager
def running(server: uvicorn.Server) -> Iterator[None]:
    """``server`` serving in a thread of the tests until the block ends."""
    thread = threading.Thread(target=server.run, name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE_S
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(PATIENCE_S)


def _client_tls() -> ssl.SSLContext:
    # The attacker does not care who the server is; the servers' identity is tested elsewhere.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(
    target: Target, *, handshake: bool = True, receive_buffer: int | None = None
) -> socket.socket:
    """A connection to the server; over TLS (handshake done) unless ``handshake`` is off."""
    raw = socket.socket()
    raw.settimeout(PATIENCE_S)
    if receive_buffer is not None:  # before connecting: it sets the window the peer sees
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect((target.host, target.port))
    if not target.tls or not handshake:
        return raw
    return _client_tls().wrap_socket(raw, server_hostname=target.host)


@contextmanager
def connected(
    target: Target, *, handshake: bool = True, receive_buffer: int | None = None
) -> Iterator[socket.socket]:
    sock = connect(target, handshake=handshake, receive_buffer=receive_buffer)
    try:
        yield sock
    finally:
        sock.close()


@dataclass(frozen=True)
class Held:
    """How a connection ended: after ``seconds`` (None: still open at the end), with ``got``."""

    seconds: float | None
    got: bytes

    @property
    def status(self) -> int | None:
        head = self.got.split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 and head[1].isdigit() else None

    @property
    def body(self) -> bytes:
        return self.got.partition(b"\r\n\r\n")[2]


def hold(
    sock: socket.socket, *, trickle: bytes = b"", every: float = 0.2, limit: float = PATIENCE_S
) -> Held:
    """Keep ``sock`` open, sending ``trickle`` one byte per ``every`` seconds, until the
    server closes it or ``limit`` seconds pass; everything the server sent is kept."""
    start = time.monotonic()
    got = b""
    pending = iter(trickle)
    sock.settimeout(every)
    while (elapsed := time.monotonic() - start) < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            chunk = None
        except OSError:  # reset, or TLS torn down without close_notify
            return Held(elapsed, got)
        if chunk == b"":
            return Held(time.monotonic() - start, got)
        if chunk:
            got += chunk
            continue
        byte = next(pending, None)
        if byte is not None:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return Held(time.monotonic() - start, got)
    return Held(None, got)


def assert_closed(held: Held, limit: float) -> None:
    """The server closed the connection, and not much later than ``limit`` seconds: the
    bound is generous (a loaded machine must not fail it), and there is no lower one."""
    assert held.seconds is not None, f"the connection was still open after {PATIENCE_S} s"
    assert held.seconds < limit + 10


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: securetf", *headers, "", ""]
    return "\r\n".join(lines).encode()


def read_response(sock: socket.socket, *, limit: float = PATIENCE_S) -> Held:
    """One response with a Content-Length (the servers under test always send one)."""
    sock.settimeout(limit)
    start, got = time.monotonic(), b""
    while True:
        head, sep, body = got.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if len(body) >= length:
                return Held(time.monotonic() - start, got)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            return Held(None, got)
        if not chunk:
            return Held(time.monotonic() - start, got)
        got += chunk


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def closed_by_server(socks: list[socket.socket], *, expected: int) -> int:
    """How many of ``socks`` the server closed, waiting until ``expected`` are (or
    :data:`PATIENCE_S` passes)."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + PATIENCE_S
    while len(closed) < expected and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], 1)
        for sock in readable:
            try:
                if sock.recv(1) == b"":
                    closed.add(sock)
            except OSError:
                closed.add(sock)
    return len(closed)


def served_again(target: Target) -> httpx.Response:
    """A normal client's ``GET /healthz``, retried until the server takes it (or
    :data:`PATIENCE_S` passes)."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            return httpx.get(f"{target.url}/healthz", verify=False, timeout=5)  # noqa: S501
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

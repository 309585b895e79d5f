"""The unmodified "programs" the tests run behind the shield: plain sockets, no TLS.

``python -m tests.shield.net.apps echo PORT [COUNT]``: echo COUNT connections (0: forever).
``python -m tests.shield.net.apps send SERVICE INDEX SIZE MARKER``: send SIZE bytes of
MARKER to the TF_CONFIG address of SERVICE[INDEX], expect them echoed; print a JSON verdict.
``python -m tests.shield.net.apps probe HOST:PORT ...``: try each address; print JSON.
``python -m tests.shield.net.apps chat PORT ROUNDS`` and ``... chat SERVICE INDEX ROUNDS``:
one connection where each side in turn sends two small writes a moment apart (as gRPC
sends a header and a body); the client prints the median round's seconds as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator


def _address(service: str, index: int) -> tuple[str, int]:
    host, port = json.loads(os.environ["TF_CONFIG"])["cluster"][service][index].split(":")
    return host, int(port)


def echo(port: int, count: int) -> None:
    # All addresses, as TensorFlow binds: the namespace has only loopback anyway.
    server = socket.create_server(("0.0.0.0", port))  # noqa: S104
    served = 0
    while count == 0 or served < count:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1 << 20):
                conn.sendall(data)
        served += 1


def _connect(address: tuple[str, int], patience: float) -> socket.socket:
    deadline = time.monotonic() + patience
    while True:
        try:
            return socket.create_connection(address, timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _stream(marker: bytes, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``marker`` repeated, in chunks of about 1 MiB (never all in memory)."""
    chunk = marker * max(1, (1 << 20) // len(marker))
    while size > 0:
        yield chunk[:size]
        size -= len(chunk)


def send(service: str, index: int, size: int, marker: bytes) -> dict[str, object]:
    """Send while reading the echo back, checking every byte against the pattern."""
    start = time.monotonic()
    try:
        sock = _connect(_address(service, index), 5)
    except OSError as exc:
        return {"result": "connect-failed", "error": str(exc)}
    sender = threading.Thread(target=_send_all, args=(sock, marker, size), daemon=True)
    sender.start()
    received, intact = 0, True
    result = "closed"
    try:
        while received < size:
            data = sock.recv(1 << 20)
            if not data:
                break
            intact = intact and data == _pattern(marker, received, len(data))
            received += len(data)
        else:
            result = "ok" if intact else "corrupt"
    except TimeoutError:
        result = "hang"
    except OSError:
        result = "closed"
    sock.close()
    return {"result": result, "received": received, "seconds": time.monotonic() - start}


def _pattern(marker: bytes, offset: int, n: int) -> bytes:
    """Bytes ``offset`` to ``offset + n`` of ``marker`` repeated forever."""
    shift = offset % len(marker)
    rotated = marker[shift:] + marker[:shift]
    return (rotated * (n // len(marker) + 1))[:n]


def _send_all(sock: socket.socket, marker: bytes, size: int) -> None:
    with contextlib.suppress(OSError):
        for part in _stream(marker, size):
            sock.sendall(part)


def probe(targets: list[str]) -> dict[str, str]:
    out = {}
    for target in targets:
        host, port = target.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=3) as sock:
                sock.sendall(b"probe")
                sock.settimeout(3)
                out[target] = "data" if sock.recv(100) else "closed"
        except TimeoutError:
            out[target] = "timeout"
        except OSError as exc:
            out[target] = f"refused: {exc.strerror or exc}"
    return out


CHAT_GAP = 0.002  # between a turn's two writes: two separate segments, not one


def _turn(sock: socket.socket) -> None:
    sock.sendall(b"a")
    time.sleep(CHAT_GAP)
    sock.sendall(b"b")


def _read(sock: socket.socket, n: int) -> None:
    while n > 0:
        data = sock.recv(n)
        if not data:
            raise ConnectionError("closed mid-turn")
        n -= len(data)


def chat_server(port: int, rounds: int) -> None:
    server = socket.create_server(("0.0.0.0", port))  # noqa: S104 - only loopback exists
    conn, _ = server.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            _read(conn, 2)
            _turn(conn)


def chat_client(service: str, index: int, rounds: int) -> dict[str, object]:
    sock = _connect(_address(service, index), 30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    with sock:
        for _ in range(rounds):
            start = time.monotonic()
            _turn(sock)
            _read(sock, 2)
            times.append(time.monotonic() - start)
    return {"result": "ok", "median": sorted(times)[len(times) // 2], "max": max(times)}


def main(argv: list[str]) -> int:
    if argv[0] == "echo":
        echo(int(argv[1]), int(argv[2]) if len(argv) > 2 else 0)
        return 0
    if argv[0] == "send":
        verdict = send(argv[1], int(argv[2]), int(argv[3]), argv[4].encode())
        print(json.dumps(verdict), flush=True)
        return 0 if verdict["result"] == "ok" else 1
    if argv[0] == "chat" and len(argv) == 3:
        chat_server(int(argv[1]), int(argv[2]))
        return 0
    if argv[0] == "chat":
        print(json.dumps(chat_client(argv[1], int(argv[2]), int(argv[3]))), flush=True)
        return 0
    if argv[0] == "probe":
        print(json.dumps(probe(argv[1:])), flush=True)
        return 0
    raise SystemExit(f"unknown app {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

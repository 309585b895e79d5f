"""The two ends of the network benchmark, run inside the lab's hosts (or a shield's program).

``python -m benchmarks._net_apps serve PORT [TLS_DIR]``: accept forever. Each connection
starts with a mode byte and an 8-byte count: ``b`` reads that many bytes and answers one
byte; ``p`` answers each byte it reads with one byte until the end; ``q`` answers each
request of that many bytes with ANSWER bytes until the end.

``python -m benchmarks._net_apps drive HOST PORT BYTES PINGS [TLS_DIR [SERVER_NAME]]``:
one stream of BYTES, then 4 parallel streams of BYTES/4 each, then PINGS one-byte round
trips, then REQUESTS requests of REQUEST bytes each answered by ANSWER bytes (the size of
a served image classifier's call: a 224x224x3 float32 image in, 1,000 float32 scores out);
prints ``{"one": GB/s, "four": GB/s, "rtt_us": median, "request_us": median}``. With
TLS_DIR (tls.crt, tls.key, ca.crt) both ends speak TLS 1.3 themselves: the "direct TLS"
baseline.
"""

from __future__ import annotations

import json
import socket
import ssl
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

_HEAD = struct.Struct("!cQ")
_CHUNK = 1 << 20
_BLOCK = memoryview(bytes(range(256)) * (_CHUNK // 256))
REQUEST, ANSWER, REQUESTS = 224 * 224 * 3 * 4, 4000, 300


def _context(tls_dir: str, *, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    where = Path(tls_dir)
    ctx.load_cert_chain(where / "tls.crt", where / "tls.key")
    ctx.load_verify_locations(where / "ca.crt")
    return ctx


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        more = sock.recv(count - len(data))
        if not more:
            raise ConnectionError("closed early")
        data += more
    return data


def _fill(sock: socket.socket, buffer: memoryview) -> bool:
    """Read exactly ``len(buffer)`` bytes; False at a clean end before the first."""
    got = 0
    while got < len(buffer):
        more = sock.recv_into(buffer[got:])
        if not more:
            if got:
                raise ConnectionError("closed in the middle of a request")
            return False
        got += more
    return True


def _serve_one(sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
    conn = ctx.wrap_socket(sock, server_side=True) if ctx else sock
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode, count = _HEAD.unpack(_read_exactly(conn, _HEAD.size))
        if mode == b"b":
            buffer = bytearray(_CHUNK)
            left = count
            while left:
                got = conn.recv_into(buffer, min(left, _CHUNK))
                if not got:
                    return
                left -= got
            conn.sendall(b"k")
        elif mode == b"q":
            request, answer = bytearray(count), bytes(ANSWER)
            while _fill(conn, memoryview(request)):
                conn.sendall(answer)
        else:
            while conn.recv(1):
                conn.sendall(b"o")


def serve(port: int, tls_dir: str | None) -> None:
    ctx = _context(tls_dir, server=True) if tls_dir else None
    # Only ever started inside the lab's namespaces or a shielded program's.
    listener = socket.create_server(("0.0.0.0", port), backlog=64)  # noqa: S104
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(sock, ctx), daemon=True).start()


class _Driver:
    def __init__(self, host: str, port: int, tls_dir: str | None, name: str | None) -> None:
        self.where = (host, port)
        self.ctx = _context(tls_dir, server=False) if tls_dir else None
        self.name = name

    def connect(self, mode: bytes, count: int) -> socket.socket:
        sock: socket.socket = socket.create_connection(self.where, timeout=120)
        if self.ctx is not None:
            sock = self.ctx.wrap_socket(sock, server_hostname=self.name)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_HEAD.pack(mode, count))
        return sock

    def bulk(self, count: int) -> None:
        with self.connect(b"b", count) as sock:
            left = count
            while left:
                piece = _BLOCK[: min(left, _CHUNK)]
                sock.sendall(piece)
                left -= len(piece)
            if sock.recv(1) != b"k":
                raise ConnectionError("no acknowledgement")

    def streams(self, total: int, parallel: int) -> float:
        """GB/s of ``parallel`` streams carrying ``total`` bytes together, connects included."""
        threads = [
            threading.Thread(target=self.bulk, args=(total // parallel,)) for _ in range(parallel)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return total / (time.perf_counter() - start) / 1e9

    def rtt_us(self, pings: int) -> float:
        with self.connect(b"p", 0) as sock:
            times = []
            for _ in range(pings):
                start = time.perf_counter()
                sock.sendall(b"i")
                if sock.recv(1) != b"o":
                    raise ConnectionError("no answer")
                times.append(time.perf_counter() - start)
        return statistics.median(times[pings // 10 :]) * 1e6  # the first are warm-up

    def request_us(self, size: int, count: int) -> float:
        with self.connect(b"q", size) as sock:
            answer = memoryview(bytearray(ANSWER))
            times = []
            for _ in range(count):
                start = time.perf_counter()
                sock.sendall(_BLOCK[:size])
                if not _fill(sock, answer):
                    raise ConnectionError("no answer")
                times.append(time.perf_counter() - start)
        return statistics.median(times[count // 10 :]) * 1e6  # the first are warm-up


def drive(argv: list[str]) -> dict[str, float]:
    host, port, total, pings = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    tls_dir = argv[4] if len(argv) > 4 else None
    driver = _Driver(host, port, tls_dir, argv[5] if len(argv) > 5 else host)
    driver.streams(total // 16, 1)  # warm-up: connections, caches, TCP windows
    return {
        "one": driver.streams(total, 1),
        "four": driver.streams(total, 4),
        "rtt_us": driver.rtt_us(pings),
        "request_us": driver.request_us(REQUEST, REQUESTS),
    }


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        serve(int(argv[1]), argv[2] if len(argv) > 2 else None)
        return 0
    print(json.dumps(drive(argv[1:])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

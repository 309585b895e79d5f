"""What crossed a link: a raw AF_PACKET capture of one bridge port, and its TCP streams.

``python -m demo.distributed._capture PORT FILE``, started inside the bridge's namespace,
writes every frame seen on PORT to FILE (each after its 4-byte length) until SIGTERM.
Frames switched between two bridge ports never pass the bridge device itself, so the demo
captures the port of one worker's host, which all of that worker's traffic crosses.
"""

from __future__ import annotations

import signal
import socket
import struct
import sys
from pathlib import Path

ETH_P_ALL = 3
SO_RCVBUFFORCE = 33  # socket.h; missing from Python's socket module
Key = tuple[str, int, str, int]  # source, source port, destination, destination port


def capture(port: str, out: Path) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
    sock.bind((port, 0))
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sock.settimeout(0.2)
    with open(out, "wb") as f:
        print("capturing", flush=True)
        while not stop:
            try:
                frame = sock.recv(262144)
            except TimeoutError:
                continue
            except InterruptedError:
                continue
            f.write(struct.pack(">I", len(frame)) + frame)
        f.flush()


def read_frames(path: Path) -> list[bytes]:
    data, at, frames = path.read_bytes(), 0, []
    while at + 4 <= len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        frames.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return frames


def tcp_segments(frames: list[bytes]) -> list[tuple[Key, int, bytes]]:
    """(source, source port, destination, destination port), sequence number, payload."""
    out = []
    for frame in frames:
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":  # IPv4 only
            continue
        ip_hdr = frame[14:]
        ihl = (ip_hdr[0] & 0x0F) * 4
        if ip_hdr[9] != socket.IPPROTO_TCP:
            continue
        total = int.from_bytes(ip_hdr[2:4], "big") or len(ip_hdr)
        tcp = ip_hdr[ihl:total]
        offset = (tcp[12] >> 4) * 4
        key = (
            socket.inet_ntoa(ip_hdr[12:16]),
            int.from_bytes(tcp[0:2], "big"),
            socket.inet_ntoa(ip_hdr[16:20]),
            int.from_bytes(tcp[2:4], "big"),
        )
        out.append((key, int.from_bytes(tcp[4:8], "big"), bytes(tcp[offset:])))
    return out


SEQ_SPACE = 2**32


def _after(seq: int, first: int) -> int:
    """How far ``seq`` lies after ``first`` in TCP's sequence space (negative: before).

    Sequence numbers count modulo 2**32 (RFC 9293, 3.4): a direction that carries more than
    what is left to 2**32 after its initial number wraps to small numbers. Within one
    capture every segment lies less than 2**31 from any other, so the nearer reading wins.
    """
    delta = (seq - first) % SEQ_SPACE
    return delta - SEQ_SPACE if delta >= SEQ_SPACE // 2 else delta


def streams(frames: list[bytes]) -> dict[Key, bytes]:
    """Each TCP direction's bytes in order, up to the first gap in the capture.

    A direction starts at its earliest segment in sequence order, counted from the first
    segment captured (not at its lowest number, which after a wrap is in the middle).
    """
    by_key: dict[Key, dict[int, bytes]] = {}
    for key, seq, payload in tcp_segments(frames):
        if payload:
            by_key.setdefault(key, {})[seq] = payload
    result = {}
    for key, segments in by_key.items():
        first = next(iter(segments))  # dicts keep the order of capture
        seq, data = min(segments, key=lambda s: _after(s, first)), bytearray()
        while seq in segments:
            data += segments[seq]
            seq = (seq + len(segments[seq])) % SEQ_SPACE
        result[key] = bytes(data)
    return result


def not_tls(data: bytes) -> str | None:
    """Why ``data`` is not a sequence of TLS records (None when it is)."""
    at = 0
    while at + 5 <= len(data):
        kind, version = data[at], data[at + 1 : at + 3]
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        if kind not in (20, 21, 22, 23) or version not in (b"\x03\x01", b"\x03\x03"):
            return f"byte {at} starts no TLS record: {data[at : at + 16]!r}"
        if length > 2**14 + 256:
            return f"byte {at}: a TLS record of {length} bytes"
        at += 5 + length
    return None


if __name__ == "__main__":
    capture(sys.argv[1], Path(sys.argv[2]))

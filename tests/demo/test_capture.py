"""The demo's capture parser on synthetic frames: order, retransmission, sequence wrap."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from demo.distributed._capture import not_tls, streams, tcp_segments

A, B = "10.0.0.1", "10.0.0.2"


def frame(seq: int, payload: bytes, *, src: str = A, dst: str = B) -> bytes:
    """Ethernet, IPv4 and TCP headers (no options) around ``payload``."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 7000, seq % 2**32, 0, 5 << 4, 0x18, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0,
        0,
        64,
        socket.IPPROTO_TCP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def records(count: int, size: int) -> bytes:
    """``count`` TLS application data records of ``size`` random bytes."""
    return b"".join(
        b"\x17\x03\x03" + struct.pack("!H", size) + os.urandom(size) for _ in range(count)
    )


def segments_of(data: bytes, start: int, mss: int = 1448) -> list[bytes]:
    return [frame(start + at, data[at : at + mss]) for at in range(0, len(data), mss)]


@pytest.mark.parametrize("before_wrap", [0, 1, 700, 1448, 5000])
def test_a_direction_that_wraps_past_2_32_is_read_whole(before_wrap: int) -> None:
    data = records(8, 1000)
    frames = segments_of(data, 2**32 - before_wrap)
    assert any(seq < 10000 for _, seq, _ in tcp_segments(frames))  # it did wrap
    (got,) = streams(frames).values()
    assert got == data
    assert not_tls(got) is None


def test_the_lowest_number_after_a_wrap_is_not_the_start() -> None:
    # The bug this guards against: starting at min(seq) began mid-stream, after the wrap,
    # and the record boundaries then looked like a stream that is not TLS.
    data = records(8, 1000)
    (got,) = streams(segments_of(data, 2**32 - 3000)).values()
    assert got[:5] == data[:5]


def test_reordered_and_retransmitted_segments() -> None:
    data = records(6, 900)
    frames = segments_of(data, 2**32 - 2000)
    shuffled = [frames[1], frames[0], frames[0], *frames[2:], frames[3]]
    (got,) = streams(shuffled).values()
    assert got == data


def test_a_gap_ends_the_stream_there() -> None:
    data = records(6, 900)
    frames = segments_of(data, 2**32 - 2000)
    (got,) = streams(frames[:2] + frames[3:]).values()
    assert got == data[: 2 * 1448]


def test_plaintext_is_reported_as_not_tls() -> None:
    (got,) = streams(segments_of(b"GET / HTTP/1.1\r\n" * 200, 2**32 - 100)).values()
    assert not_tls(got) is not None

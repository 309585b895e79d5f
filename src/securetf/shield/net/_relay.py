"""Copying between the program's plaintext connection and a peer's TLS connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from securetf.shield.net._settings import COPY_BUFFER, Timing

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
#: Both the stream reader's limit and the transports' write buffer: enough to keep a fast
#: link busy, small enough that a slow reader pushes back on the writer.
WINDOW = 4 * COPY_BUFFER


def tune(writer: asyncio.StreamWriter, timing: Timing | None = None) -> None:
    """Large write buffers; TCP keepalive on links to peers, so a vanished peer is noticed."""
    writer.transport.set_write_buffer_limits(high=WINDOW, low=WINDOW // 4)
    sock = writer.get_extra_info("socket")
    if timing is None or sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, timing.keepalive_idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, timing.keepalive_interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, timing.keepalive_count)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(COPY_BUFFER):
        writer.write(data)
        await writer.drain()


async def splice(a: Stream, b: Stream) -> None:
    """Copy both ways until either side ends, then close both.

    No half-close: TLS transports cannot send one, so the end of either direction ends the
    connection (after what was read has been written). An error aborts both sides, so the
    program sees a reset rather than a clean end.
    """
    up = asyncio.create_task(_copy(a[0], b[1]))
    down = asyncio.create_task(_copy(b[0], a[1]))
    failed = False
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        failed = any(t.exception() is not None for t in done)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        for _, writer in (a, b):
            close(writer, abort=failed)


def close(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    with contextlib.suppress(Exception):
        if abort:
            writer.transport.abort()
        else:
            writer.close()

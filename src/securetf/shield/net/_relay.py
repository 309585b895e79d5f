"""Copying between the program's plaintext connections and peers' TLS connections.

Each tunnel is two threads, one per direction, over blocking sockets: ``recv_into`` and
``sendall`` on plain sockets and OpenSSL's record work all run without the GIL, so the two
directions of a tunnel, and all tunnels, use every core. TLS runs over memory BIOs: one
``recv`` of up to :data:`COPY_BUFFER` bytes feeds many TLS records to OpenSSL, and one
``sendall`` carries all records of a large write, where a TLS socket would make two system
calls per record. That keeps the copy under stunnel's cost per byte (benchmarks/bench_net.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol, cast

from securetf.shield.net._settings import COPY_BUFFER, Timing

log = logging.getLogger("securetf.shield.net")
LINGER_ABORT = struct.pack("ii", 1, 0)  # close() then sends a reset, not a clean end


class Conn(Protocol):
    sock: socket.socket

    def recv_into(self, buffer: memoryview) -> int: ...

    def sendall(self, data: memoryview) -> None: ...

    def finish(self) -> None:
        """The clean end of this side's stream (TLS: close_notify); errors are ignored."""


def tune(sock: socket.socket, timing: Timing | None = None) -> None:
    """Blocking, no Nagle; TCP keepalive on links to peers, so a vanished peer is noticed."""
    sock.setblocking(True)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if timing is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, timing.keepalive_idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, timing.keepalive_interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, timing.keepalive_count)


def abort(sock: socket.socket) -> None:
    """Close with a reset: the other end sees an error, never a clean end of stream."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
    sock.close()


class Plain:
    """A plaintext TCP connection (the program's side, or an egress destination)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv_into(self, buffer: memoryview) -> int:
        return self.sock.recv_into(buffer)

    def sendall(self, data: memoryview) -> None:
        self.sock.sendall(data)

    def finish(self) -> None:
        return None


class Tls:
    """TLS over a blocking socket through memory BIOs, safe for one reader and one writer.

    OpenSSL's connection object is not safe for concurrent use, so ``_state`` guards it and
    its BIOs; the socket I/O happens outside it. ``_send`` keeps records in the order they
    were made: it is taken before ``_state`` is released, and held through the ``sendall``.
    """

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        hostname: str | None = None,
    ) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=hostname
        )
        self._state = threading.Lock()
        self._send = threading.Lock()
        #: Where TLS records land before OpenSSL reads them: one buffer, not a new
        #: COPY_BUFFER-sized allocation for every arrival (which costs a mapping per call).
        self._arrived = memoryview(bytearray(COPY_BUFFER))
        self._starved = False  # only the reading thread uses it

    def handshake(self, timeout: float) -> None:
        """Complete the handshake within ``timeout`` seconds; raise ssl.SSLError, OSError."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self._tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("TLS handshake timed out") from None
                    self.sock.settimeout(left)
                    data = self.sock.recv(COPY_BUFFER)
                    if not data:
                        raise ConnectionResetError("closed during the TLS handshake") from None
                    self._in.write(data)
            self._flush()
        except ssl.SSLError:
            with contextlib.suppress(OSError):
                self._flush()  # the alert, so the peer learns why
            raise
        finally:
            self.sock.settimeout(None)

    def peercert(self) -> Mapping[str, Any]:
        """The verified peer certificate (``getpeercert()`` form); both sides require one."""
        cert = self._tls.getpeercert()
        if not cert:
            raise ssl.SSLError("the peer presented no certificate")
        return cert

    def peer_der(self) -> bytes:
        """The verified peer certificate, DER: what the CAS is asked about."""
        der = self._tls.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLError("the peer presented no certificate")
        return der

    def _flush(self) -> None:
        with self._state:
            data = self._out.read()
            if not data:
                return
            self._send.acquire()
        try:
            self.sock.sendall(data)
        finally:
            self._send.release()

    def recv_into(self, buffer: memoryview) -> int:
        """Decrypt what has arrived into ``buffer``: at least one byte, or 0 at the end."""
        while True:
            if not self._starved:
                with self._state:
                    count, closed = self._decrypt(buffer)
                    reply = self._out.pending > 0  # a post-handshake message to answer
                if reply:
                    self._flush()
                if count or closed:
                    return count
            count = self.sock.recv_into(self._arrived)
            if not count:
                raise ConnectionResetError("the TLS peer closed without close_notify")
            with self._state:
                self._in.write(self._arrived[:count])
            self._starved = False

    def _decrypt(self, buffer: memoryview) -> tuple[int, bool]:
        """Read records until OpenSSL wants more input (then ``_starved``: nothing more
        comes out before more goes in, so the next call reads the socket first). Always
        ask OpenSSL otherwise: it may hold records taken from the BIO but not processed
        yet (a close_notify behind the last data), which neither BIO nor ``pending()``
        shows."""
        count = 0
        try:
            while count < len(buffer):
                got = cast(int, self._tls.read(len(buffer) - count, buffer[count:]))
                if not got:
                    return count, True
                count += got
        except ssl.SSLWantReadError:
            self._starved = True
        except ssl.SSLZeroReturnError:  # the peer's close_notify
            return count, True
        return count, False

    def sendall(self, data: memoryview) -> None:
        with self._state:
            self._tls.write(data)
            records = self._out.read()
            self._send.acquire()
        try:
            self.sock.sendall(records)
        finally:
            self._send.release()

    def finish(self) -> None:
        with self._state:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # writes close_notify; the peer's answer is not awaited
            alert = self._out.read()
        # Never wait for a peer that does not read: the alert is tiny, or it is skipped.
        if alert and self._send.acquire(timeout=1.0):
            try:
                with contextlib.suppress(OSError):
                    self.sock.send(alert, socket.MSG_DONTWAIT)
            finally:
                self._send.release()


class _Splice:
    """The two directions of one tunnel; whichever ends first ends both."""

    def __init__(self, a: Conn, b: Conn) -> None:
        self.a, self.b = a, b
        self.failed = False
        self._lock = threading.Lock()
        self._ended = False

    def pump(self, source: Conn, sink: Conn) -> None:
        buffer = memoryview(bytearray(COPY_BUFFER))
        failed = False
        try:
            while count := source.recv_into(buffer):
                sink.sendall(buffer[:count])
        except (OSError, ssl.SSLError, ValueError):
            failed = True
        except Exception:  # never leave the other direction waiting
            log.exception("tunnel copy failed")
            failed = True
        self._end(failed)

    def _end(self, failed: bool) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended, self.failed = True, failed
        if not failed:
            # What was read has been written; the clean end goes to both sides.
            self.a.finish()
            self.b.finish()
        for side in (self.a, self.b):  # wakes the other direction where it reads
            with contextlib.suppress(OSError):
                side.sock.shutdown(socket.SHUT_RD if failed else socket.SHUT_RDWR)


def relay(a: Conn, b: Conn) -> None:
    """Copy both ways until either side ends, then close both; returns when both are closed.

    No half-close: the end of either direction ends the connection (after what was read has
    been written), as a TLS peer cannot send one. An error on either side, or a TLS peer
    that stops without close_notify (a truncation), aborts both, so the program sees a reset
    rather than a clean end.
    """
    splice = _Splice(a, b)
    other = threading.Thread(
        target=splice.pump, args=(b, a), name="securetf-net-relay", daemon=True
    )
    other.start()
    splice.pump(a, b)
    other.join(1.0)
    if other.is_alive():  # blocked in a send to a side that does not read
        for side in (a, b):
            with contextlib.suppress(OSError):
                side.sock.shutdown(socket.SHUT_RDWR)
        other.join()
    for side in (a, b):
        if splice.failed:
            abort(side.sock)
        else:
            side.sock.close()

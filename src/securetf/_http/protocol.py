"""uvicorn's HTTP/1.1 protocol with every wait a client can impose bounded.

uvicorn bounds only the wait between keep-alive requests. Left alone, a client could hold
a connection, and the memory behind it, for ever: by never finishing the TLS handshake, by
sending nothing after it, by sending its headers or its body a byte at a time, or by never
reading its response; and it could open connections without limit. This protocol closes
each of those waits after a limit of :class:`HttpLimits`, and closes connections beyond
``max_connections`` before spending a TLS handshake on them.

The server hands uvicorn no TLS context: the protocol upgrades each accepted TCP connection
itself (``loop.start_tls``), which is where a handshake deadline and the connection count
can apply, as asyncio's server offers neither per connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from securetf._http.limits import HttpLimits

__all__ = ["ConnectionCount", "protocol_class"]


class ConnectionCount:
    """The connections one server holds open (its protocols share one event loop)."""

    def __init__(self) -> None:
        self.open = 0


class _BoundedH11(H11Protocol):
    limits: ClassVar[HttpLimits]
    tls: ClassVar[ssl.SSLContext | None]
    count: ClassVar[ConnectionCount]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted = False  # holds one of the server's max_connections
        self._made = False  # uvicorn's connection_made ran (after TLS, if any)
        self._handshake: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self._early: list[bytes] = []  # arrived before start_tls returned (see data_received)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None

    # -- the TCP connection: count, then TLS -----------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.count.open >= self.limits.max_connections:
            transport.abort()  # before any TLS work: the cheapest refusal there is
            return
        self.count.open += 1
        self._counted = True
        if self.tls is None:
            self._start(transport)
            return
        # The ClientHello must wait for the TLS layer: not reach the HTTP parser first.
        transport.pause_reading()
        self._handshake = self.loop.create_task(self._start_tls(transport, self.tls))

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            tls = await self.loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.limits.tls_handshake_seconds,
                ssl_shutdown_timeout=self.limits.tls_handshake_seconds,
            )
        except OSError:  # refused, reset or too slow; start_tls closed the connection
            tls = None
        if tls is None:  # (None: the client left during the handshake)
            self._release()
            return
        self._start(tls)

    def _start(self, transport: asyncio.Transport) -> None:
        self._made = True
        super().connection_made(transport)
        # uvicorn arms its idle timer only after a response: a connection that never sends
        # a request would otherwise stay open for ever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        for timer in (self._header_timer, self._body_timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        if self._made:
            super().connection_lost(exc)

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self.count.open -= 1

    # -- the request: header and body deadlines ---------------------------------------
    def data_received(self, data: bytes) -> None:
        if not self._made:
            # The TLS layer hands on what follows the handshake at once, before start_tls
            # returns the transport (a read's worth; _start replays it).
            self._early.append(data)
            return
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            # The first byte of a request: its headers are due within header_seconds.
            self._header_timer = self._later(self.limits.header_seconds, self._close)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def _follow_request(self) -> None:
        state = self.conn.their_state
        if state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if state is h11.SEND_BODY and self._body_timer is None:
            self._body_timer = self._later(self.limits.body_seconds, self._body_overdue)
        elif state is not h11.SEND_BODY and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_overdue(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            # Answered already, and the rest of the body trickles in only to be discarded.
            self._close()
        else:
            # The app still works on the request; if it waits for the body, BodyGuard
            # answers 408. Either way this connection serves no further request.
            self.cycle.keep_alive = False

    # -- the response: a client that does not read it ---------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self._later(self.limits.send_stall_seconds, self._abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # -- helpers -----------------------------------------------------------------------
    def _later(self, seconds: float, action: Callable[[], None]) -> asyncio.TimerHandle:
        return self.loop.call_later(seconds, action)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _abort(self) -> None:
        # A reset: a FIN would queue behind the megabytes the client does not read, and the
        # kernel would keep them for minutes after the socket is closed.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


def protocol_class(
    limits: HttpLimits, tls: ssl.SSLContext | None, count: ConnectionCount
) -> type[H11Protocol]:
    """uvicorn's ``http`` protocol for one server: its limits, TLS context and count."""

    class Bounded(_BoundedH11):
        pass

    Bounded.limits, Bounded.tls, Bounded.count = limits, tls, count
    return Bounded

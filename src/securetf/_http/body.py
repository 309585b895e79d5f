"""An ASGI middleware that bounds a request body in size and time while the app reads it.

Starlette's own ``RequestBodyLimitMiddleware`` answers in plain text and has no deadline;
this one answers in the app's error shape (``render``) and also refuses a body that arrives
too slowly. Counting what the app actually receives covers chunked bodies, which declare
no length, as well as declared ones: nothing beyond the limit is ever buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from securetf._http.limits import BodyTimeoutError, BodyTooLargeError
from securetf.errors import Error, UsageError

__all__ = ["BodyGuard"]


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header; only ASCII digits (``str.isdigit`` also takes "²")."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not (value.isascii() and value.isdigit()):  # bytes.isdigit: ASCII only
                raise UsageError("Content-Length must be a decimal number of bytes")
            return int(value)
    return None


class _Reading:
    """One request's body as the app reads it: counted, and under a deadline."""

    def __init__(self, receive: Receive, send: Send, *, max_bytes: int, seconds: float) -> None:
        self._receive, self._send = receive, send
        self._max_bytes, self._seconds = max_bytes, seconds
        self._deadline = asyncio.get_running_loop().time() + seconds
        self._size = 0
        self._done = False
        self.refusal: Error | None = None
        self.started = False

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self._done:  # after the body only a disconnect can come: no deadline on that
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.refusal = BodyTimeoutError(
                f"the request body did not arrive within {self._seconds:g} s; send it "
                "in one go, or over a faster connection"
            )
            raise self.refusal from None
        if message["type"] != "http.request":
            self._done = True
            return message
        self._size += len(message.get("body", b""))
        if self._size > self._max_bytes:
            self.refusal = _too_large(self._max_bytes)
            raise self.refusal
        self._done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.refusal is not None and not self.started:
            return  # the app's answer to the refusal; the guard answers instead
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _too_large(max_bytes: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"request bodies are limited to {max_bytes} bytes; send a smaller request"
    )


class BodyGuard:
    """Refuses a request body over ``max_bytes`` (413) or slower than ``seconds`` (408).

    ``render`` turns the refusal into the app's usual error response.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        seconds: float,
        render: Callable[[Error], Response],
    ) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._seconds = seconds
        self._render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            declared = _declared_length(scope)
        except UsageError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        if declared is not None and declared > self._max_bytes:
            # Refused before a byte of it is read.
            await self._refuse(_too_large(self._max_bytes), scope, receive, send)
            return
        reading = _Reading(receive, send, max_bytes=self._max_bytes, seconds=self._seconds)
        try:
            await self._app(scope, reading.receive, reading.send)
        except Exception:
            # The app may let the refusal (or what it made of it) escape: ours stands.
            if reading.refusal is None or reading.started:
                raise
        if reading.refusal is not None and not reading.started:
            await self._refuse(reading.refusal, scope, receive, send)

    async def _refuse(self, exc: Error, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._render(exc)
        if isinstance(exc, BodyTimeoutError):
            # A client this slow does not get to keep the connection for another request.
            response.headers["connection"] = "close"
        await response(scope, receive, send)

"""BodyGuard on its own, as uvicorn drives it: messages in, messages out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from securetf._http.body import BodyGuard
from securetf._http.limits import HttpLimits
from securetf.errors import Error, UsageError

STATUS = {"BodyTooLargeError": 413, "BodyTimeoutError": 408, "UsageError": 400}


def _render(exc: Error) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=STATUS[type(exc).__name__])


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await Response(str(size))(scope, receive, send)


def _call(
    messages: list[Message],
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    app: Any = _reading_app,
    seconds: float = 5.0,
    gap: float = 0.0,
) -> tuple[int, list[Message], int]:
    """The status the guard answers, what it sent, and how many messages the app took."""
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        if not pending:
            await asyncio.sleep(3600)  # a client that never sends more
        await asyncio.sleep(gap)
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(headers)}
    guard = BodyGuard(app, max_bytes=100, seconds=seconds, render=_render)
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], sent, len(messages) - len(pending)


def _chunk(size: int, more: bool = True) -> Message:
    return {"type": "http.request", "body": b"x" * size, "more_body": more}


def test_a_body_within_the_limit_reaches_the_app() -> None:
    status, sent, _ = _call([_chunk(60), _chunk(40, more=False)])
    assert status == 200
    assert sent[1]["body"] == b"100"


def test_a_chunked_body_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    status, _, taken = _call([_chunk(60), _chunk(41), _chunk(1000), _chunk(1, more=False)])
    assert status == 413
    assert taken == 2  # nothing read past the limit


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    status, _, taken = _call([_chunk(101, more=False)], headers=((b"content-length", b"101"),))
    assert (status, taken) == (413, 0)


@pytest.mark.parametrize("declared", ["\u00b2", "1\u00b2", "-1", " 12", "1_0", ""])
def test_a_content_length_that_is_not_ascii_digits_is_a_400(declared: str) -> None:
    # "²".isdigit() is True and int("²") raises: the check this replaced answered 500.
    status, _, _ = _call([], headers=((b"content-length", declared.encode("latin-1")),))
    assert status == 400


def test_a_body_slower_than_the_deadline_is_a_408_that_closes_the_connection() -> None:
    status, sent, _ = _call([_chunk(1)] * 50, seconds=0.3, gap=0.05)
    assert status == 408
    assert (b"connection", b"close") in sent[0]["headers"]


def test_the_wait_for_a_disconnect_after_the_body_has_no_deadline() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the whole body
        with pytest.raises(TimeoutError):  # then a disconnect that does not come
            async with asyncio.timeout(0.5):
                await receive()
        await Response("done")(scope, receive, send)

    status, _, _ = _call([_chunk(10, more=False)], app=app, seconds=0.2)
    assert status == 200


def test_what_the_app_makes_of_a_refusal_is_replaced_by_the_refusal() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
        except UsageError:
            # FastAPI turns any error while reading a body into its own 400.
            await Response("bad body", status_code=400)(scope, receive, send)

    status, sent, _ = _call([_chunk(101)], app=app)
    assert status == 413
    assert len(sent) == 2  # the refusal's start and body, and nothing of the app's


def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError):
        HttpLimits(header_seconds=0)
    with pytest.raises(UsageError):
        HttpLimits(max_connections=0)

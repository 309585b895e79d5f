"""Attacks on the CAS's HTTPS server by clients that are oversized, slow, idle or too many
(THREATS.md: the network and the anonymous client).

The oversized bodies go to a real ``securetf cas serve`` process with its default limits,
whose memory is measured; the slow and greedy clients to the same server run in this
process with limits of a second or two, so each attack takes seconds.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from securetf._http.limits import HttpLimits
from securetf.cas.settings import CasSettings
from tests._http.attacks import (
    PATIENCE_S,
    Target,
    assert_closed,
    chunked,
    closed_by_server,
    connect,
    connected,
    hold,
    read_response,
    request_head,
    served_again,
)
from tests.ports import free_port

from .inprocess import running_cas
from .server_support import CasProcess

MIB = 1024 * 1024
LIMIT = CasSettings().max_request_bytes
ERROR_KEYS = {"error", "type", "exit_code"}


def _error(got: bytes | httpx.Response) -> dict[str, Any]:
    body = got.content if isinstance(got, httpx.Response) else got.partition(b"\r\n\r\n")[2]
    doc: dict[str, Any] = json.loads(body)
    assert set(doc) == ERROR_KEYS, doc
    return doc


# -- a CAS process with its default limits ------------------------------------------------
@pytest.fixture(scope="module")
def cas_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasProcess]:
    tmp = tmp_path_factory.mktemp("cas-http")
    (tmp / "home").mkdir()
    proc = CasProcess(data=tmp / "cas", home=tmp / "home", port=free_port())
    proc.start()
    yield proc
    proc.stop()


def _peak_rss_mib(proc: CasProcess) -> int:
    assert proc.proc is not None
    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) // 1024


def test_a_chunked_body_is_refused_as_soon_as_it_crosses_the_limit(
    cas_process: CasProcess,
) -> None:
    # Chunked: no Content-Length to refuse it by. The body never ends, so only a server
    # that counts while it reads can answer at all.
    with connected(Target("127.0.0.1", cas_process.port)) as sock:
        sock.sendall(
            request_head(
                "POST", "/v1/policies", "Transfer-Encoding: chunked", "Content-Type: text/plain"
            )
        )
        for _ in range((LIMIT + 256 * 1024) // (64 * 1024)):
            sock.sendall(chunked(b" " * 64 * 1024))
        answer = read_response(sock)
    assert answer.status == 413, answer.got[:300]
    assert str(LIMIT) in _error(answer.got)["error"]


def test_a_40_mib_chunked_body_does_not_grow_the_cas(cas_process: CasProcess) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(40 * MIB // (64 * 1024)):
            yield b" " * 64 * 1024

    with httpx.Client(verify=False, timeout=PATIENCE_S * 3) as http:  # noqa: S501 - attacker
        http.get(f"{cas_process.url}/healthz")
        before = _peak_rss_mib(cas_process)
        answer = http.post(f"{cas_process.url}/v1/policies", content=body())
    assert answer.status_code == 413, answer.text
    assert _error(answer)["type"] == "BodyTooLargeError"
    # Reading it whole cost the CAS ~230 MiB of peak memory; now nothing beyond the limit
    # is kept (a generous bound: the limit plus the allocator's slack).
    assert _peak_rss_mib(cas_process) - before < 4 * LIMIT // MIB


# -- the same server in this process, with limits of seconds ----------------------------
QUICK = HttpLimits(
    tls_handshake_seconds=2,
    header_seconds=2,
    body_seconds=2,
    idle_seconds=1,
    send_stall_seconds=2,
)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running_cas(tmp_path_factory.mktemp("quick"), CasSettings(http=QUICK)) as target:
        yield target


def test_a_tls_handshake_that_never_comes_is_cut_off(quick: Target) -> None:
    with connected(quick, handshake=False) as sock:
        assert_closed(hold(sock), QUICK.tls_handshake_seconds)


def test_a_handshake_sent_a_byte_at_a_time_is_cut_off(quick: Target) -> None:
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200)
    with connected(quick, handshake=False) as sock:
        assert_closed(hold(sock, trickle=hello), QUICK.tls_handshake_seconds)


def test_a_connection_that_sends_nothing_is_closed(quick: Target) -> None:
    with connected(quick) as sock:
        assert_closed(hold(sock), QUICK.idle_seconds)


def test_a_keep_alive_connection_is_closed_when_idle(quick: Target) -> None:
    with connected(quick) as sock:
        sock.sendall(request_head("GET", "/healthz"))
        assert read_response(sock).status == 200
        assert_closed(hold(sock), QUICK.idle_seconds)


def test_headers_sent_a_byte_at_a_time_are_cut_off(quick: Target) -> None:
    slowloris = request_head("GET", "/healthz", "X-Padding: " + "a" * 500)
    with connected(quick) as sock:
        held = hold(sock, trickle=slowloris)
    assert_closed(held, QUICK.header_seconds)
    assert held.status is None  # the request never reached the app


def test_a_body_sent_a_byte_at_a_time_is_refused_with_408(quick: Target) -> None:
    with connected(quick) as sock:
        sock.sendall(request_head("POST", "/v1/policies", "Content-Length: 1000"))
        held = hold(sock, trickle=b"{" + b" " * 998)
    assert_closed(held, QUICK.body_seconds)
    assert held.status == 408, held.got[:300]
    assert _error(held.got)["type"] == "BodyTimeoutError"


def test_a_body_the_app_ignores_cannot_trickle_on_after_the_answer(quick: Target) -> None:
    # POST /v1/nonce reads no body: it answers at once, and the rest trickles in to be
    # discarded, which used to hold the connection for as long as the client liked.
    with connected(quick) as sock:
        sock.sendall(request_head("POST", "/v1/nonce", "Content-Length: 1000") + b" ")
        held = hold(sock, trickle=b" " * 999)
    assert held.status == 200
    assert_closed(held, QUICK.body_seconds)


TCP_CLOSED_STATES = {7, 8}  # Linux tcp_states: CLOSE, CLOSE_WAIT (the server reset or left)


def _tcp_state(sock: socket.socket) -> int:
    return int(struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0])


def test_a_client_that_reads_no_answer_is_disconnected(quick: Target) -> None:
    with connected(quick, receive_buffer=4096) as sock:
        # ~10 MB of answers to a client that reads none: more than every buffer between.
        sock.sendall(request_head("GET", "/openapi.json") * 500)
        deadline = time.monotonic() + QUICK.send_stall_seconds + 10
        while _tcp_state(sock) not in TCP_CLOSED_STATES:
            assert time.monotonic() < deadline, "the server still writes to a stalled client"
            time.sleep(0.2)


# -- too many connections -----------------------------------------------------------------
CROWDED = HttpLimits(max_connections=8, tls_handshake_seconds=60, idle_seconds=60)


def test_connections_beyond_the_limit_are_closed_and_the_cas_recovers(tmp_path: Path) -> None:
    with ExitStack() as stack:
        target = stack.enter_context(running_cas(tmp_path, CasSettings(http=CROWDED)))
        attackers = [connect(target, handshake=False) for _ in range(40)]
        for sock in attackers:
            stack.callback(sock.close)
        # The 8 within the limit wait in their handshake; the other 32 are closed at once.
        surplus = len(attackers) - CROWDED.max_connections
        assert closed_by_server(attackers, expected=surplus) == surplus
        # While they hold their slots, no one else gets in.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{target.url}/healthz", verify=False, timeout=PATIENCE_S)  # noqa: S501
        for sock in attackers:
            sock.close()
        # Once they leave, a normal client is served.
        assert served_again(target).status_code == 200

"""Attacks on ``securetf serve``'s REST server: versions in digits other than ASCII, and
clients that are slow, idle or too many (the same limits as the CAS, securetf._http)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from securetf._http.limits import HttpLimits
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository
from securetf.serve.server import rest_server
from securetf.serve.settings import ServeSettings, TlsFiles
from tests._http.attacks import (
    Target,
    assert_closed,
    closed_by_server,
    connect,
    connected,
    hold,
    request_head,
    running,
    served_again,
)
from tests.ports import free_port
from tests.serve.support import ServerProcess, TestCa


@pytest.mark.parametrize(
    "version",
    ["\u00b2", "\u0661", "\U0001d7cf", "1\u00b2"],  # ², Arabic-Indic 1, bold 1, 1²
)
@pytest.mark.parametrize("suffix", ["", "/metadata"])
def test_a_version_in_other_digits_is_a_400(
    server: ServerProcess, version: str, suffix: str
) -> None:
    # "²".isdigit() is True but int("²") fails (a 500); int() reads the Arabic-Indic 1 as 1
    # (model 1 answered). Only ASCII digits are versions.
    with server.http() as http:
        answer = http.get(f"/v1/models/dense/versions/{version}{suffix}")
        predict = http.post(
            f"/v1/models/dense/versions/{version}:predict", json={"instances": [[1, 2, 3, 4]]}
        )
    for r in (answer, predict):
        assert r.status_code == 400, r.text
        assert set(r.json()) == {"error"}


# -- the same server in this process, with limits of seconds ----------------------------
QUICK = HttpLimits(
    tls_handshake_seconds=2, header_seconds=2, body_seconds=2, idle_seconds=1, max_connections=8
)


@pytest.fixture(scope="module")
def quick(
    model_dir: Path, policy_ca: TestCa, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    pair = policy_ca.instance(tmp_path_factory.mktemp("quick-tls"))
    settings = ServeSettings(model_dir=model_dir, port=free_port(), http=QUICK)
    metrics = ServeMetrics()
    repo = ModelRepository.load(model_dir, max_batch_size=1, batch_timeout=0.0)
    try:
        tls = TlsFiles(cert=pair.cert, key=pair.key, client_ca=None)
        with running(rest_server(settings, tls, repo, metrics)):
            yield Target("127.0.0.1", settings.port)
    finally:
        repo.close()


def test_a_connection_that_sends_nothing_is_closed(quick: Target) -> None:
    with connected(quick) as sock:
        assert_closed(hold(sock), QUICK.idle_seconds)


def test_headers_sent_a_byte_at_a_time_are_cut_off(quick: Target) -> None:
    with connected(quick) as sock:
        held = hold(sock, trickle=request_head("GET", "/healthz", "X-Padding: " + "a" * 500))
    assert_closed(held, QUICK.header_seconds)


def test_a_body_sent_a_byte_at_a_time_is_refused_with_408(quick: Target) -> None:
    with connected(quick) as sock:
        sock.sendall(request_head("POST", "/v1/models/dense:predict", "Content-Length: 1000"))
        held = hold(sock, trickle=b"{" + b" " * 998)
    assert_closed(held, QUICK.body_seconds)
    assert held.status == 408, held.got[:300]
    assert set(json.loads(held.body)) == {"error"}


def test_connections_beyond_the_limit_are_closed_and_the_server_recovers(quick: Target) -> None:
    with ExitStack() as stack:
        attackers = [connect(quick, handshake=False) for _ in range(3 * QUICK.max_connections)]
        for sock in attackers:
            stack.callback(sock.close)
        # Beyond the limit, closed at once (those within it wait out their handshake).
        surplus = len(attackers) - QUICK.max_connections
        assert closed_by_server(attackers, expected=surplus) >= surplus
    assert served_again(quick).status_code == 200

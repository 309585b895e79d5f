"""Two instances on two hosts talk through the shield, and the link carries only TLS."""

from __future__ import annotations

import os
import time

from .conftest import (
    PORT,
    TUNNEL,
    StartNode,
    app,
    verdict,
    wait_for_tunnel,
    wait_for_tunnel_port,
)
from .lab import SERVER_NAME, Capture, Lab, client_hello, streams, tcp_segments, tls_records

SIZE = 8 * 1024 * 1024


def test_round_trip_only_tls_on_the_link(lab: Lab, start_node: StartNode) -> None:
    marker = os.urandom(8).hex().encode()  # 16 bytes of plaintext to look for
    capture = Capture(lab)
    try:
        # The client starts first: its runtime retries until the peer's runtime is up.
        client = start_node("a", 0, app("send", "worker", 1, SIZE, marker.decode()))
        time.sleep(1.0)
        server = start_node("b", 1, app("echo", PORT, 1))
        result = verdict(client)
        assert server.wait(timeout=30) == 0
    finally:
        frames = capture.stop()
    assert result["result"] == "ok", result
    assert client.returncode == 0
    # 1. The capture saw the traffic: at least the payload both ways crossed the bridge.
    segments = tcp_segments(frames)
    assert sum(len(p) for _, _, p in segments) > 2 * SIZE
    # 2. No plaintext: not one frame holds the marker.
    assert not [f for f in frames if marker in f]
    # 3. Only the tunnel port carried data, and every byte of it is a TLS record.
    ports = {(k[1], k[3]) for k, _, p in segments if p}
    assert all(TUNNEL in pair for pair in ports), ports
    data = streams(frames)
    records = [t for stream in data.values() for t in tls_records(stream)]
    assert records.count(23) > SIZE // 16384  # application data, in full records
    assert not any(marker in stream for stream in data.values())


def test_no_service_or_policy_name_in_clear(lab: Lab, start_node: StartNode) -> None:
    # The names the certificates carry: worker-0/worker-1 of policy "pol".
    capture = Capture(lab)
    try:
        server = start_node("b", 1, app("echo", PORT, 1))
        wait_for_tunnel_port(lab, "b")
        client = start_node("a", 0, app("send", "worker", 1, 4096, "z"))
        result = verdict(client)
        assert server.wait(timeout=30) == 0
    finally:
        frames = capture.stop()
    assert result["result"] == "ok", result
    hellos = [
        hello
        for (_, _, _, port), stream in streams(frames).items()
        if port == TUNNEL and (hello := client_hello(stream)) is not None
    ]
    assert len(hellos) >= 1  # the capture saw the tunnel's handshake
    for extensions in hellos:
        assert SERVER_NAME not in extensions  # no SNI at all
    # Nor anywhere else on the wire: the certificates travel encrypted (TLS 1.3).
    for name in (b"worker", b".pol"):
        assert not [f for f in frames if name in f], name


def test_unreachable_peer_gives_a_closed_connection(lab: Lab, start_node: StartNode) -> None:
    # worker-1 "lives" on host c, where nothing listens: after its patience the runtime
    # closes the program's connection instead of leaving it hanging.
    node = start_node("a", 0, app("send", "worker", 1, 1000, "x"), patience=2.0)
    result = verdict(node, timeout=30)
    assert result["result"] == "closed", result
    assert result["seconds"] < 8


def test_dead_peer_gives_a_closed_connection(lab: Lab, start_node: StartNode) -> None:
    server = start_node("b", 1, app("echo", PORT, 0))
    wait_for_tunnel_port(lab, "b")  # on a busy machine a node takes seconds to come up
    client = start_node("a", 0, app("send", "worker", 1, 1 << 40, "y"))
    wait_for_tunnel(lab, "a", "b")
    time.sleep(1.0)  # the transfer runs (a TiB takes far longer than this)
    os.killpg(server.pid, 9)
    killed = time.monotonic()
    result = verdict(client, timeout=30)
    assert result["result"] == "closed", result
    assert result["received"] > 0  # the tunnel was up, then the peer died
    assert time.monotonic() - killed < 10

"""The test servers' ports: never one an outgoing connection or another test can take."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from tests import ports
from tests.ports import free_port


def test_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < start for p in ports)


def test_a_port_in_use_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    block = ports._BLOCK
    held = []
    try:
        for port in block[:10]:
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            held.append(s)
        monkeypatch.setattr(ports, "_NEXT", itertools.count(0))
        assert free_port() == block[10]
    finally:
        for s in held:
            s.close()

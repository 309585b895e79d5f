"""Ports for the servers tests start, chosen so that no two can meet on one.

A port taken by binding port 0 and closing again comes from the kernel's ephemeral range,
the same range every outgoing connection's source port comes from: between the choice and
the server's bind, another test's connection (or another worker's choice) may take it, and
the server fails with "Address already in use". Ports here come from below that range, each
pytest-xdist worker from its own block, each only once per process, and only if nothing is
bound to it now.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
from pathlib import Path

_SPAN = 12_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _block() -> range:
    start = _ephemeral_start()
    low = max(1024, start - _SPAN)
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (start - low) // count
    return range(low + (index % count) * size, low + (index % count + 1) * size)


_BLOCK = _block()
_NEXT = itertools.count(random.randrange(len(_BLOCK)))
_LOCK = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that no other test of this run will be given."""
    for _ in range(len(_BLOCK)):
        with _LOCK:
            port = _BLOCK[next(_NEXT) % len(_BLOCK)]
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port left in {_BLOCK.start}-{_BLOCK.stop - 1}")

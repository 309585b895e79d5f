"""The network shield's limits, named in one place."""

from __future__ import annotations

from dataclasses import dataclass

#: Bytes read per copy step (both directions); TLS records are at most 16 KiB, so one read
#: drains many of them.
COPY_BUFFER = 256 * 1024
#: Where the program's peers appear inside its namespace: 127.<BASE + service>.<hi>.<lo>.
VIRTUAL_BASE = 128
MAX_SERVICES = 100
#: Instances per service that fit the virtual address scheme (1 + j % 250 in the last byte).
INSTANCES_PER_OCTET = 250


#: What carries the tunnels' bytes: ``native`` (the compiled relay, securetf-relay) or
#: ``python`` (threads over memory BIOs, _relay.py: the data path before ADR 0017).
DATA_PATHS = ("native", "python")
DEFAULT_DATA_PATH = "native"


@dataclass(frozen=True)
class Timing:
    """How long the tunnel waits; tests shorten them, production keeps the defaults."""

    connect_patience: float = 30.0
    """How long an outbound connection retries an unreachable peer before giving up."""
    retry_first: float = 0.05
    retry_max: float = 1.0
    handshake: float = 10.0
    """TLS handshake and tunnel header, per connection."""
    keepalive_idle: int = 10
    keepalive_interval: int = 3
    keepalive_count: int = 3
    """A peer that vanishes without closing is noticed after idle + interval * count seconds."""

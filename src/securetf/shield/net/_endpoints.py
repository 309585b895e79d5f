"""Where other instances' runtimes listen: ``SERVICE-INSTANCE=HOST:PORT``, from the operator.

This is untrusted input, and needs no more: the tunnel authenticates whoever answers at an
address by its certificate, so a wrong address yields a refused peer, never a wrong one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from securetf.errors import UsageError


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """``HOST:PORT`` with an IPv4 address, ``[IPv6]:PORT`` or a host name."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{text!r}: {host!r} is not an IPv6 address") from None
    if not sep or not host or (":" in host and not text.startswith("[")):
        raise UsageError(f"{text!r} is not HOST:PORT (write IPv6 addresses as [ADDR]:PORT)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{text!r}: the port must be a number from 1 to 65535")
    return Endpoint(host, int(port))


def instance_name(service: str, instance: int) -> str:
    """The name a CAS-issued instance certificate carries as its common name."""
    return f"{service}-{instance}"


def parse_peers(items: Iterable[str]) -> dict[str, Endpoint]:
    """``SERVICE-INSTANCE=HOST:PORT`` items, one per instance, into a map by instance name."""
    found: dict[str, Endpoint] = {}
    for item in items:
        name, sep, where = item.partition("=")
        service, dash, number = name.rpartition("-")
        if not sep or not dash or not service or not number.isdigit():
            raise UsageError(
                f"--peer {item!r} is not SERVICE-INSTANCE=HOST:PORT (e.g. worker-1=10.0.0.2:7000)"
            )
        key = instance_name(service, int(number))
        if key in found:
            raise UsageError(f"--peer names {key} twice")
        found[key] = parse_endpoint(where)
    return found


def endpoints_text(peers: Mapping[str, Endpoint]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(peers.items())) or "(none)"

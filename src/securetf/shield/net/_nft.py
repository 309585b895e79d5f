"""The program namespace's nftables rules: peers redirected to the runtime, nothing else out.

The namespace has only loopback, so nothing can leave it at all; the rules add the one way
out, the redirection of every peer's virtual ``address:port`` to the runtime's listener,
whose ``SO_ORIGINAL_DST`` then names the peer. The filter is defence in depth.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable

from securetf.shield.net._netns import run_inside

TABLE = "securetf"
#: ``SO_ORIGINAL_DST`` (linux/netfilter_ipv4.h), missing from Python's socket module.
SO_ORIGINAL_DST = 80


def _elements(items: Iterable[tuple[object, int]]) -> str:
    text = ", ".join(f"{addr} . {port}" for addr, port in items)
    return f"\n    elements = {{ {text} }}" if text else ""


def ruleset(
    redirect_to: int,
    targets: Iterable[tuple[str, int]],
    *,
    egress_to: int | None = None,
    egress6_to: int | None = None,
    egress: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]] = (),
) -> str:
    """The ruleset text for ``nft -f -``: pure, so tests read it.

    Peers' ``address . port`` go to the tunnel listener, the policy's egress exceptions to
    the egress listener of their family; whatever else is not for loopback is rejected.
    """
    peers = _elements(sorted({(ipaddress.IPv4Address(a), p) for a, p in targets}))
    rules = set(egress)
    allowed = _elements(sorted((n, p) for n, p in rules if n.version == 4))
    allowed6 = _elements(sorted((n, p) for n, p in rules if n.version == 6))
    egress_rule = (
        f"\n    ip daddr . tcp dport @egress redirect to :{egress_to}" if egress_to else ""
    )
    egress6_rule = (
        f"\n    ip6 daddr . tcp dport @egress redirect to :{egress6_to}" if egress6_to else ""
    )
    return f"""table ip {TABLE} {{
  set peers {{
    type ipv4_addr . inet_service{peers}
  }}
  set egress {{
    type ipv4_addr . inet_service; flags interval;{allowed}
  }}
  chain to_runtime {{
    type nat hook output priority -100; policy accept;
    ip daddr . tcp dport @peers redirect to :{redirect_to}{egress_rule}
  }}
  chain out {{
    type filter hook output priority 0; policy drop;
    ip daddr != 127.0.0.0/8 meta l4proto tcp reject with tcp reset
    ip daddr != 127.0.0.0/8 reject
    oifname "lo" accept
  }}
}}
table ip6 {TABLE} {{
  set egress {{
    type ipv6_addr . inet_service; flags interval;{allowed6}
  }}
  chain to_runtime {{
    type nat hook output priority -100; policy accept;{egress6_rule}
  }}
  chain out {{
    type filter hook output priority 0; policy drop;
    ip6 daddr != ::1 meta l4proto tcp reject with tcp reset
    ip6 daddr != ::1 reject
    oifname "lo" accept
  }}
}}
"""


def apply(
    netns: int,
    text: str,
    routes: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
) -> None:
    """Load the rules; route the egress networks to loopback, where the rules catch them."""
    for net in sorted(set(routes), key=lambda n: (n.version, n)):
        family, source = ("-4", "127.0.0.1") if net.version == 4 else ("-6", "::1")
        run_inside(netns, ["ip", family, "route", "add", str(net), "dev", "lo", "src", source])
    run_inside(netns, ["nft", "-f", "-"], stdin=text.encode())


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where the program meant to connect before the redirection."""
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)  # sockaddr_in6
        port, packed = struct.unpack_from("!2xH4x16s", raw)
        return socket.inet_ntop(socket.AF_INET6, packed), int(port)
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), int(port)

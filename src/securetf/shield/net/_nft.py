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


def ruleset(redirect_to: int, targets: Iterable[tuple[str, int]]) -> str:
    """The ruleset text for ``nft -f -``: pure, so tests read it."""
    elements = ", ".join(
        f"{ipaddress.IPv4Address(addr)} . {port}" for addr, port in sorted(set(targets))
    )
    peers = f"\n    elements = {{ {elements} }}" if elements else ""
    return f"""table ip {TABLE} {{
  set peers {{
    type ipv4_addr . inet_service{peers}
  }}
  chain to_runtime {{
    type nat hook output priority -100; policy accept;
    ip daddr . tcp dport @peers redirect to :{redirect_to}
  }}
  chain out {{
    type filter hook output priority 0; policy drop;
    oifname "lo" accept
  }}
}}
table ip6 {TABLE} {{
  chain out {{
    type filter hook output priority 0; policy drop;
    oifname "lo" accept
  }}
}}
"""


def apply(netns: int, text: str) -> None:
    run_inside(netns, ["nft", "-f", "-"], stdin=text.encode())


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where the program meant to connect before the redirection (IPv4)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), int(port)

"""The network shield: the program in its own network namespace, its peers over mutual TLS.

See docs/net-shield.md.
"""

from securetf.shield.net._endpoints import Endpoint, instance_name, parse_endpoint, parse_peers
from securetf.shield.net._errors import NetShieldError, PeerRefusedError
from securetf.shield.net._identity import peer_service
from securetf.shield.net._liveness import PeerLiveness
from securetf.shield.net._netns import check_tools
from securetf.shield.net._plan import Plan, Route, plan, virtual_address
from securetf.shield.net._settings import Timing
from securetf.shield.net._shield import NetShield
from securetf.shield.net._tls import Identity

__all__ = [
    "Endpoint",
    "Identity",
    "NetShield",
    "NetShieldError",
    "PeerLiveness",
    "PeerRefusedError",
    "Plan",
    "Route",
    "Timing",
    "check_tools",
    "instance_name",
    "parse_endpoint",
    "parse_peers",
    "peer_service",
    "plan",
    "virtual_address",
]

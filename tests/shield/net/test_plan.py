"""The cluster as the program sees it, and where each connection goes (pure)."""

from __future__ import annotations

import json

import pytest

from securetf.errors import UsageError
from securetf.protocol.messages import NetworkGrant, PeerService
from securetf.shield.net import Endpoint, parse_peers, plan, virtual_address

NET = NetworkGrant(
    peers=["ps", "worker"],
    listen=[2222],
    cluster={
        "worker": PeerService(instances=3, listen=[2222]),
        "ps": PeerService(instances=1, listen=[3333, 3334]),
    },
)
PEERS = parse_peers([f"worker-{k}=10.0.0.{k + 1}:7000" for k in range(3)] + ["ps-0=h:7001"])


def test_routes_reach_every_other_instance_on_every_port() -> None:
    p = plan(NET, policy="pol", service="worker", instance=1, peers=PEERS)
    # Services are indexed in name order: ps 0, worker 1.
    assert p.own_address == "127.129.0.2"
    assert {(a, port): (r.name, r.port) for (a, port), r in p.routes.items()} == {
        ("127.129.0.1", 2222): ("worker-0", 2222),
        ("127.129.0.3", 2222): ("worker-2", 2222),
        ("127.128.0.1", 3333): ("ps-0", 3333),
        ("127.128.0.1", 3334): ("ps-0", 3334),
    }
    assert p.routes[("127.128.0.1", 3333)].endpoint == Endpoint("h", 7001)
    assert p.inbound == Endpoint("10.0.0.2", 7000)
    assert json.loads(p.tf_config()) == {
        "cluster": {
            "ps": ["127.128.0.1:3333"],
            "worker": ["127.129.0.1:2222", "127.129.0.2:2222", "127.129.0.3:2222"],
        },
        "task": {"type": "worker", "index": 1},
    }


def test_a_service_that_is_not_a_peer_gets_no_route() -> None:
    net = NET.model_copy(update={"peers": ["ps"]})
    p = plan(net, policy="pol", service="worker", instance=0, peers=PEERS)
    assert {r.service for r in p.routes.values()} == {"ps"}
    assert p.allowed == {"ps"}


def test_listening_needs_its_own_endpoint() -> None:
    with pytest.raises(UsageError, match="--peer worker-1=HOST:PORT"):
        plan(NET, policy="pol", service="worker", instance=1, peers={})


def test_an_unknown_peer_endpoint_is_a_route_without_endpoint() -> None:
    p = plan(NET, policy="pol", service="worker", instance=0, peers=parse_peers(["worker-0=a:1"]))
    assert p.routes[("127.129.0.2", 2222)].endpoint is None


def test_virtual_addresses_are_distinct() -> None:
    seen = {virtual_address(s, j) for s in range(100) for j in range(1024)}
    assert len(seen) == 100 * 1024
    assert all(a.startswith("127.") and not a.endswith(".0") for a in seen)


def test_egress_networks_addresses_and_names() -> None:
    items = ["10.1.0.0/16:443", "1.2.3.4:80", "[2001:db8::/32]:443", "pypi.org:443", "nx.test:1"]
    net = NET.model_copy(update={"egress": items})
    answers = {"pypi.org": ["151.101.0.223", "2a04:4e42::223"]}
    p = plan(
        net,
        policy="pol",
        service="worker",
        instance=0,
        peers=PEERS,
        resolve=lambda name: answers.get(name, []),
    )
    assert p.allows_egress("10.1.200.3", 443)
    assert p.allows_egress("1.2.3.4", 80)
    assert p.allows_egress("2001:db8:1::5", 443)
    assert p.allows_egress("151.101.0.223", 443)  # the name's addresses at start
    assert p.allows_egress("2a04:4e42::223", 443)
    assert not p.allows_egress("10.1.200.3", 444)
    assert not p.allows_egress("10.2.0.1", 443)
    assert not p.allows_egress("2001:db9::1", 443)
    assert not p.allows_egress("151.101.0.224", 443)
    assert not p.allows_egress("151.101.0.223", 80)
    # What the program's /etc/hosts will say; a name that does not resolve stays closed.
    assert p.hosts == {"pypi.org": ("151.101.0.223", "2a04:4e42::223")}
    assert len(p.egress) == 5

"""The instance's view of the cluster: virtual addresses, routes, TF_CONFIG. Pure, no I/O.

Inside the program's namespace every instance of the cluster has a virtual loopback address
``127.<128 + service index>.<j // 250>.<1 + j % 250>`` (services sorted by name) and listens
on its service's ports. Connections to another instance's address are redirected to the
runtime, which carries them over mutual TLS; the instance's own address is local.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from securetf.errors import UsageError
from securetf.protocol.messages import NetworkGrant
from securetf.shield.net import _settings
from securetf.shield.net._endpoints import Endpoint, endpoints_text, instance_name

log = logging.getLogger("securetf.shield.net")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Egress = tuple[Network, int]
#: Host name -> its addresses (IPv4 and IPv6), as the runtime resolves them once at start.
Resolver = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Route:
    """Where a connection to a virtual address and port goes."""

    service: str
    instance: int
    port: int
    endpoint: Endpoint | None  # None: the operator did not say where it listens

    @property
    def name(self) -> str:
        return instance_name(self.service, self.instance)


@dataclass(frozen=True)
class Plan:
    policy: str
    service: str
    instance: int
    own_address: str
    listen: tuple[int, ...]
    allowed: frozenset[str]
    """Services whose instances may connect in, and be connected to."""
    routes: Mapping[tuple[str, int], Route]
    inbound: Endpoint | None
    """Where this instance's runtime accepts tunnels (None: nothing listens)."""
    cluster: Mapping[str, tuple[str, ...]]
    """Per service with listen ports: its instances' ``address:port`` (first port)."""
    egress: tuple[Egress, ...] = ()
    """The policy's exceptions, carried in plain TCP from the runtime's namespace."""
    hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Host names of the egress exceptions and the addresses they stood for at start: the
    program's /etc/hosts, as it has no DNS."""
    public: tuple[int, ...] = ()
    """Ports anyone may reach, forwarded as they are: the program speaks TLS itself."""
    public_host: str = "0.0.0.0"  # noqa: S104 - a server's public ports, as the policy says
    """The host address the public ports are offered at."""

    def allows_egress(self, address: str, port: int) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net and port == p for net, p in self.egress)

    def tf_config(self) -> str:
        """TF_CONFIG for TensorFlow's distributed strategies."""
        return json.dumps(
            {
                "cluster": {s: list(a) for s, a in self.cluster.items()},
                "task": {"type": self.service, "index": self.instance},
            },
            sort_keys=True,
        )


def virtual_address(service_index: int, instance: int) -> str:
    hi, lo = divmod(instance, _settings.INSTANCES_PER_OCTET)
    return f"127.{_settings.VIRTUAL_BASE + service_index}.{hi}.{1 + lo}"


def resolve_host(name: str) -> Sequence[str]:
    """The addresses ``name`` has now (the host's resolver); none if it has none."""
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return ()
    return sorted({str(info[4][0]) for info in found})


def egress_rules(
    items: Sequence[str], resolve: Resolver = resolve_host
) -> tuple[tuple[Egress, ...], dict[str, tuple[str, ...]]]:
    """The exceptions as networks and ports, and the host names among them with their
    addresses. ``cidr:port``, ``address:port``, ``[v6cidr]:port`` and ``name:port`` (the
    policy has checked the syntax); a name is resolved once, here, and allowed at exactly
    the addresses it had."""
    rules: list[Egress] = []
    hosts: dict[str, tuple[str, ...]] = {}
    for item in items:
        host, _, port_text = item.rpartition(":")
        port, host = int(port_text), host.removeprefix("[").removesuffix("]")
        try:
            rules.append((ipaddress.ip_network(host), port))
            continue
        except ValueError:
            pass
        addresses = hosts.get(host) or tuple(resolve(host))
        if not addresses:
            log.warning("egress %s stays closed: %s does not resolve", item, host)
            continue
        hosts[host] = addresses
        rules += [(ipaddress.ip_network(a), port) for a in addresses]
    return tuple(dict.fromkeys(rules)), hosts


def plan(
    network: NetworkGrant,
    *,
    policy: str,
    service: str,
    instance: int,
    peers: Mapping[str, Endpoint],
    public_host: str = "0.0.0.0",  # noqa: S104 - the policy's public ports, on every interface
    resolve: Resolver = resolve_host,
) -> Plan:
    """Derive the routes and the cluster; raise if the operator's map misses what is needed."""
    names = sorted({service, *network.cluster})
    if len(names) > _settings.MAX_SERVICES:
        raise UsageError(f"the network shield handles at most {_settings.MAX_SERVICES} services")
    index = {name: i for i, name in enumerate(names)}
    allowed = frozenset(network.peers)
    routes: dict[tuple[str, int], Route] = {}
    cluster: dict[str, tuple[str, ...]] = {}
    for name in names:
        info = network.cluster.get(name)
        if info is None:
            continue
        addresses = [virtual_address(index[name], j) for j in range(info.instances)]
        if info.listen:
            cluster[name] = tuple(f"{a}:{info.listen[0]}" for a in addresses)
        if name not in allowed:
            continue
        for j, address in enumerate(addresses):
            if (name, j) == (service, instance):
                continue
            for port in info.listen:
                where = peers.get(instance_name(name, j))
                routes[(address, port)] = Route(name, j, port, where)
    own = instance_name(service, instance)
    inbound = peers.get(own)
    if network.listen and inbound is None:
        raise UsageError(
            f"service {service!r} listens on {', '.join(map(str, network.listen))}, but no "
            f"--peer {own}=HOST:PORT says where this runtime accepts its peers "
            f"(given: {endpoints_text(peers)})"
        )
    egress, hosts = egress_rules(network.egress, resolve)
    return Plan(
        policy=policy,
        service=service,
        instance=instance,
        own_address=virtual_address(index[service], instance),
        listen=tuple(network.listen),
        allowed=allowed,
        routes=routes,
        inbound=inbound if network.listen else None,
        cluster=cluster,
        egress=egress,
        hosts=hosts,
        public=tuple(network.public),
        public_host=public_host,
    )

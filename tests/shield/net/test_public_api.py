from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import securetf.shield.net as net
from securetf.shield.net._nft import ruleset


def test_all_is_exactly_the_public_names() -> None:
    public = {n for n in vars(net) if not n.startswith("_")} - {"annotations"}
    assert set(net.__all__) == public


def test_ruleset_redirects_only_peers_and_drops_the_rest() -> None:
    text = ruleset(40000, [("127.128.0.2", 2222), ("127.129.0.1", 3333)])
    assert "elements = { 127.128.0.2 . 2222, 127.129.0.1 . 3333 }" in text
    assert "ip daddr . tcp dport @peers redirect to :40000" in text
    assert text.count("policy drop;") == 2  # IPv4 and IPv6: only loopback leaves
    assert "ip daddr != 127.0.0.0/8 meta l4proto tcp reject with tcp reset" in text
    assert "@egress redirect" not in text  # no exceptions, no egress listener


def test_ruleset_carries_egress_exceptions() -> None:
    text = ruleset(1, [], egress_to=2, egress=[(IPv4Network("10.0.0.0/8"), 443)])
    assert "flags interval;\n    elements = { 10.0.0.0/8 . 443 }" in text
    assert "ip daddr . tcp dport @egress redirect to :2" in text


def test_ruleset_carries_ipv6_exceptions_to_their_own_listener() -> None:
    v6 = IPv6Network("2001:db8::/32")
    text = ruleset(1, [], egress6_to=3, egress=[(v6, 443)])
    assert (
        "type ipv6_addr . inet_service; flags interval;\n    elements = { 2001:db8::/32 . 443 }"
        in text
    )
    assert "ip6 daddr . tcp dport @egress redirect to :3" in text
    assert "ip daddr . tcp dport @egress redirect" not in text  # no IPv4 exception
    assert "ip6 daddr != ::1 meta l4proto tcp reject with tcp reset" in text

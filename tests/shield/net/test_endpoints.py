"""The operator's ``--peer`` map: parsed strictly, refused with a clear message."""

from __future__ import annotations

import pytest

from securetf.errors import UsageError
from securetf.shield.net import Endpoint, parse_endpoint, parse_peers


def test_parse_peers() -> None:
    assert parse_peers(["my-svc-12=10.0.0.1:7000", "w-0=[fd00::1]:7001", "w-1=host.example:9"]) == {
        "my-svc-12": Endpoint("10.0.0.1", 7000),
        "w-0": Endpoint("fd00::1", 7001),
        "w-1": Endpoint("host.example", 9),
    }
    assert str(Endpoint("fd00::1", 1)) == "[fd00::1]:1"


@pytest.mark.parametrize(
    "item", ["w0=1.2.3.4:5", "w-x=1.2.3.4:5", "-1=1.2.3.4:5", "w-1", "w-1=1.2.3.4", "w-1=:5"]
)
def test_bad_peer_items(item: str) -> None:
    with pytest.raises(UsageError):
        parse_peers([item])


@pytest.mark.parametrize("text", ["fd00::1:5", "[nope]:5", "h:0", "h:70000", "h:x"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(UsageError):
        parse_endpoint(text)


def test_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="twice"):
        parse_peers(["w-1=a:1", "w-01=b:2"])

"""Which service a verified certificate speaks for: the one trust decision of the shield."""

from __future__ import annotations

from typing import Any

import pytest

from securetf.shield.net import PeerRefusedError, peer_service


def cert(common: str, policy: str = "pol", dns: list[str] | None = None) -> dict[str, Any]:
    service = common.rpartition("-")[0]
    names = dns if dns is not None else [f"{common}.{policy}", f"{service}.{policy}"]
    return {
        "subject": ((("organizationName", policy),), (("commonName", common),)),
        "subjectAltName": tuple(("DNS", n) for n in names),
    }


def test_an_allowed_instance_certificate() -> None:
    assert peer_service(cert("worker-3"), policy="pol", allowed=["worker", "ps"]) == "worker"
    assert peer_service(cert("my-svc-0"), policy="pol", allowed=["my-svc"]) == "my-svc"


@pytest.mark.parametrize(
    ("certificate", "allowed"),
    [
        (cert("intruder-0"), ["worker"]),  # another service
        (cert("worker-0", policy="other"), ["worker"]),  # another policy
        (cert("worker-0"), []),  # no peers at all: an empty allow list refuses
        (cert("worker-0", dns=["worker.pol"]), ["worker"]),  # not an instance certificate
        (cert("worker-0", dns=["worker-0.pol"]), ["worker"]),
        (cert("worker"), ["worker"]),  # no instance number
        # Service "a"'s instance "a-0" does not pass for a service named "a-0".
        (cert("a-0", dns=["a-0.pol", "a.pol"]), ["a-0"]),
        ({"subjectAltName": (("DNS", "worker.pol"),)}, ["worker"]),  # no subject
    ],
)
def test_refused(certificate: dict[str, Any], allowed: list[str]) -> None:
    with pytest.raises(PeerRefusedError):
        peer_service(certificate, policy="pol", allowed=allowed)

"""The liveness decision (pure) and the checker's memory: what it asks, keeps and refuses.

The CAS here is a fail-closed stand-in (a table of answers; anything not in it raises), so
each case controls exactly what the CAS says; tests/serve/test_client_revocation.py and
tests/shield/net/test_revocation.py ask a real one.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.client import LivenessChecker, NotLiveError
from securetf.client.liveness import LIVE_TTL, MAX_REMEMBERED, CertifiedInstance, require_live
from securetf.crypto.x509ca import EcKey, issue_certificate, new_ca
from securetf.errors import AuthenticationError, UsageError
from securetf.protocol import InstanceStatus

POLICY = "clinic"
_CA = new_ca("clinic CA", now=time.time(), valid_days=1)


def cert(serial: int = 7, *, common: str = "serve-0", org: str | None = POLICY) -> bytes:
    """An instance certificate as the CAS issues them, DER."""
    pem = issue_certificate(
        _CA[0],
        _CA[1],
        EcKey.generate().public_der(),
        common_name=common,
        organization=org,
        alt_names=[f"{common}.{POLICY}"],
        server=True,
        client=True,
        serial=serial,
        now=time.time(),
        valid_seconds=3600,
    )
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def live(
    serial: int = 7, *, expires_in: float = 3600.0, service: str = "serve", instance: int = 0
) -> InstanceStatus:
    return InstanceStatus(
        policy=POLICY,
        serial=serial,
        live=True,
        service=service,
        instance=instance,
        expires_at=time.time() + expires_in,
    )


def dead(serial: int = 7, reason: str = "unknown or superseded") -> InstanceStatus:
    return InstanceStatus(policy=POLICY, serial=serial, live=False, reason=reason)


@dataclass
class Cas:
    """Answers only what it was told; any other question fails (closed)."""

    answers: dict[int, InstanceStatus] = field(default_factory=dict)
    asked: list[int] = field(default_factory=list)

    def __call__(self, policy: str, serial: int) -> InstanceStatus:
        self.asked.append(serial)
        if policy != POLICY or serial not in self.answers:
            raise AuthenticationError("the test CAS was not told about this")
        return self.answers[serial]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def checker(cas: Cas, clock: Clock, ttl: float = LIVE_TTL) -> LivenessChecker:
    return LivenessChecker(cas, policy=POLICY, monotonic=clock, ttl=ttl)


# -- the decision ------------------------------------------------------------------------------
def test_a_live_answer_about_the_certificate_passes() -> None:
    require_live(live(), CertifiedInstance.from_der(cert()))


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (dead(reason="unknown or superseded"), NotLiveError, "superseded"),
        (dead(reason="version 3 no longer allows its measurement"), NotLiveError, "measurement"),
        (live(serial=8), AuthenticationError, "another certificate"),
        (live().model_copy(update={"policy": "other"}), AuthenticationError, "another cert"),
        (live(service="train"), AuthenticationError, "train-0, not serve-0"),
        (live(instance=1), AuthenticationError, "serve-1, not serve-0"),
    ],
)
def test_known_bad_answers_refuse(
    status: InstanceStatus, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        require_live(status, CertifiedInstance.from_der(cert()))


def test_a_refusal_says_what_happened_and_what_to_do() -> None:
    with pytest.raises(NotLiveError) as caught:
        require_live(dead(), CertifiedInstance.from_der(cert()))
    text = str(caught.value)
    for part in ("serve-0", "serial 7", "nothing was sent", "Connect to the instance running"):
        assert part in text


@pytest.mark.parametrize(
    ("common", "org"), [("serve", POLICY), ("serve-x", POLICY), ("-0", POLICY), ("serve-0", None)]
)
def test_certificates_not_shaped_like_instances_are_refused(common: str, org: str | None) -> None:
    with pytest.raises(AuthenticationError, match="not an instance certificate"):
        CertifiedInstance.from_der(cert(common=common, org=org))


@given(st.binary(max_size=300))
def test_garbage_is_refused_not_crashed_on(data: bytes) -> None:
    with pytest.raises(AuthenticationError):
        CertifiedInstance.from_der(data)


def test_an_instance_name_with_dashes_keeps_its_service() -> None:
    got = CertifiedInstance.from_der(cert(common="a-b-12"))
    assert (got.service, got.instance, got.serial, got.policy) == ("a-b", 12, 7, POLICY)


# -- the checker -------------------------------------------------------------------------------
def test_a_live_answer_is_remembered_for_the_ttl_then_asked_again() -> None:
    cas, clock = Cas({7: live()}), Clock()
    check = checker(cas, clock)
    check.check(cert())
    clock.now += LIVE_TTL - 0.1
    check.check(cert())
    assert cas.asked == [7]
    clock.now += 0.2
    cas.answers[7] = dead()
    with pytest.raises(NotLiveError):
        check.check(cert())
    assert cas.asked == [7, 7]


def test_a_live_answer_is_never_kept_past_the_expiry_the_cas_states() -> None:
    cas, clock = Cas({7: live(expires_in=5.0)}), Clock()
    check = checker(cas, clock)
    check.check(cert())
    clock.now += 5.5
    check.check(cert())
    assert cas.asked == [7, 7]


def test_an_answer_past_its_expiry_is_not_kept_at_all() -> None:
    cas, clock = Cas({7: live(expires_in=-1.0)}), Clock()
    check = checker(cas, clock)
    check.check(cert())
    check.check(cert())
    assert cas.asked == [7, 7]


def test_refusals_are_never_remembered() -> None:
    cas, clock = Cas({7: dead()}), Clock()
    check = checker(cas, clock)
    for _ in range(2):
        with pytest.raises(NotLiveError, match="superseded"):
            check.check(cert())
    assert cas.asked == [7, 7]
    cas.answers[7] = live()  # e.g. an update allowed its measurement again
    check.check(cert())


def test_a_cas_that_cannot_be_asked_refuses_fail_closed() -> None:
    cas, clock = Cas(), Clock()
    with pytest.raises(AuthenticationError, match="cannot confirm with the CAS") as caught:
        checker(cas, clock).check(cert())
    assert "nothing was sent" in str(caught.value)
    assert not isinstance(caught.value, NotLiveError)


def test_a_certificate_of_another_policy_is_refused_without_asking() -> None:
    cas = Cas({7: live()})
    with pytest.raises(AuthenticationError, match="policy 'other'"):
        checker(cas, Clock()).check(cert(org="other"))
    assert cas.asked == []


def test_a_ttl_of_zero_asks_every_time() -> None:
    cas = Cas({7: live()})
    check = checker(cas, Clock(), ttl=0)
    check.check(cert())
    check.check(cert())
    assert cas.asked == [7, 7]


@pytest.mark.parametrize("ttl", [-1.0, LIVE_TTL + 0.001])
def test_the_ttl_cannot_be_set_beyond_its_limit(ttl: float) -> None:
    with pytest.raises(UsageError):
        checker(Cas(), Clock(), ttl=ttl)


def test_memory_is_bounded() -> None:
    cas, clock = Cas(), Clock()
    check = checker(cas, clock)
    der = {s: cert(s) for s in range(1, 4)}
    for s in der:
        cas.answers[s] = live(s)
    for s in range(4, MAX_REMEMBERED + 3):  # fill it from the decision's side
        check._remember(s, live(s))
    check.check(der[1])
    check.check(der[2])
    assert len(check._remembered) == MAX_REMEMBERED
    check.check(der[2])
    assert cas.asked == [1, 2]  # the newest entries stay

"""RTMR3 with the runtime's event log: the policy pins RTMR3's boot value, the log explains
what was extended since, and only the replay that reaches the quote's RTMR3 passes."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from securetf.attestation import Claims, Collateral, appraise, reference_values, verify_dcap
from securetf.attestation.emulated.intel import IntelTestPki
from securetf.attestation.rtmr import app_event, app_event_digest, expected_rtmr3
from securetf.cas._provision import _rtmr3_events
from securetf.errors import AttestationError
from securetf.policy import Tee
from securetf.protocol import ProvisionRequest
from tests.policy._support import make_policy

NOW = 1_800_000_000
APP, OTHER = hashlib.sha256(b"app").digest(), hashlib.sha256(b"an earlier app").digest()


@pytest.fixture(scope="module")
def claims() -> Claims:
    """A TD whose RTMR3 went from zero through OTHER then APP."""
    pki = IntelTestPki.generate(now=NOW)
    quote = pki.quote("tdx", bytes(64), rtmr3=expected_rtmr3([OTHER, APP]))
    collateral = Collateral.load(pki.collateral_json("tdx").encode())
    return verify_dcap(quote, collateral, tee="tdx", now=NOW, root=pki.root)


def policy_tee(claims: Claims, boot_rtmr3: bytes) -> Tee:
    reference = reference_values(claims) | {"rtmr3": boot_rtmr3.hex()}
    section = {"allow": ["tdx", "test-roots"], "tdx": reference}
    return make_policy(tee=json.dumps(section)).tee


def check(claims: Claims, tee: Tee, events: list[bytes]) -> Claims:
    return appraise(
        claims,
        allowed_tees=tee.allow,
        expected_measurements=(),
        expected_report_data=claims.report_data,
        references=tee,
        rtmr3_events=events,
    )


def test_the_whole_log_replays_from_the_boot_value(claims: Claims) -> None:
    events = [app_event_digest(OTHER), app_event_digest(APP)]
    assert check(claims, policy_tee(claims, bytes(48)), events) == claims


@pytest.mark.parametrize(
    "events",
    [[], [app_event_digest(APP)], [app_event_digest(APP), app_event_digest(OTHER)]],
    ids=["no log", "shortened log", "reordered log"],
)
def test_a_log_that_does_not_reach_the_quotes_rtmr3_is_refused(
    claims: Claims, events: list[bytes]
) -> None:
    with pytest.raises(AttestationError, match="rtmr3"):
        check(claims, policy_tee(claims, bytes(48)), events)


def test_another_boot_value_is_refused(claims: Claims) -> None:
    events = [app_event_digest(OTHER), app_event_digest(APP)]
    with pytest.raises(AttestationError, match="rtmr3"):
        check(claims, policy_tee(claims, b"\x01" * 48), events)


def _request(tee: str, events: list[str]) -> ProvisionRequest:
    return ProvisionRequest(
        policy="p",
        service="s",
        tee=tee,
        evidence=b"e",
        nonce=bytes(32),
        tls_public_key=b"k",
        box_public_key=bytes(32),
        rtmr_events=events,
    )


def test_the_cas_wants_this_app_as_the_last_event() -> None:
    log = [app_event(OTHER).to_json(), app_event(APP).to_json()]
    assert _rtmr3_events(_request("tdx", log), APP) == [
        app_event_digest(OTHER),
        app_event_digest(APP),
    ]
    with pytest.raises(AttestationError, match="last RTMR3 event is not the app"):
        _rtmr3_events(_request("tdx", log[::-1]), APP)
    with pytest.raises(AttestationError, match="comes with tdx evidence"):
        _rtmr3_events(_request("sev-snp", log), APP)
    # A line whose digest is not its measurement's is refused before any replay.
    forged = dataclasses.replace(app_event(APP), digest=app_event_digest(OTHER)).to_json()
    with pytest.raises(AttestationError, match="digest does not match"):
        _rtmr3_events(_request("tdx", [forged]), APP)

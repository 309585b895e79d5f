"""Signed requests: exact bytes, canonical form, wire round trip."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.errors import PolicyError
from securetf.policy import SIGNING_CONTEXT, SignedRequest, sign_request
from tests.policy._support import NOW, digest, key


def _signed(**overrides: object) -> SignedRequest:
    fields: dict[str, object] = {
        "action": "create",
        "policy": "demo",
        "version": 1,
        "policy_hash": digest("p"),
        "issued_at": NOW,
        "request_id": "ab" * 16,
    }
    fields.update(overrides)
    return sign_request(key("alice"), **fields)  # type: ignore[arg-type]


def test_body_is_canonical_json_and_signed_with_context() -> None:
    signed = _signed()
    assert signed.body == (
        b'{"action":"create","detail":{},"imports":{},"issued_at":1750000000,"policy":"demo",'
        b'"policy_hash":"'
        + digest("p").encode()
        + b'","request_id":"'
        + b"ab" * 16
        + b'","target":"","version":1}'
    )
    key("alice").verify_key().verify(signed.signature, SIGNING_CONTEXT + signed.body)
    assert signed.unverified_request().issued_at == NOW


def test_request_ids_are_random_by_default() -> None:
    first, second = _signed(request_id=None), _signed(request_id=None)
    assert first.unverified_request().request_id != second.unverified_request().request_id


def test_wire_form_round_trips() -> None:
    signed = _signed()
    assert SignedRequest.from_json(signed.to_json()) == signed


@pytest.mark.parametrize(
    "overrides",
    [
        {"action": "delete"},
        {"policy_hash": "sha256:00"},
        {"version": 0},
        {"request_id": "short"},
        {"policy": "Bad Name"},
    ],
)
def test_signing_refuses_malformed_requests(overrides: dict[str, object]) -> None:
    with pytest.raises(PolicyError, match="invalid signed request"):
        _signed(**overrides)


def test_non_canonical_or_oversize_body_is_refused() -> None:
    signed = _signed()
    spaced = json.dumps(json.loads(signed.body), indent=1).encode()
    with pytest.raises(PolicyError, match="canonical"):
        SignedRequest(signed.signer, spaced, signed.signature).unverified_request()
    duplicated = signed.body[:-1] + b',"version":1}'
    with pytest.raises(PolicyError):
        SignedRequest(signed.signer, duplicated, signed.signature).unverified_request()
    with pytest.raises(PolicyError, match="at most"):
        SignedRequest(signed.signer, b" " * 5000, signed.signature).unverified_request()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"signer":"x","body":"!!","signature":""}',
        b'{"signer":"x","body":"","signature":"","more":1}',
    ],
)
def test_bad_wire_forms(data: bytes) -> None:
    with pytest.raises(PolicyError):
        SignedRequest.from_json(data)


@given(st.binary(max_size=300))
def test_any_body_parses_or_raises_policy_error(body: bytes) -> None:
    with contextlib.suppress(PolicyError):
        SignedRequest("ed25519:x", body, b"").unverified_request()

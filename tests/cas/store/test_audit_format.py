"""The audit chain's pure parts: verification and the wire form (no database)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from securetf.cas._records import AuditEntry
from securetf.cas.audit import (
    GENESIS_CHAIN,
    audit_entry_from_json,
    audit_entry_to_json,
    make_audit_entry,
    verify_audit_chain,
)
from securetf.crypto import SigningKey, sha256
from securetf.errors import IntegrityError
from securetf.policy import canonical_json

KEY = SigningKey.generate()


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS_CHAIN
    for seq in range(1, n + 1):
        entries.append(make_audit_entry(prev, seq, 10.0 * seq, "k", "p", {"n": seq}, KEY))
        prev = entries[-1].chain
    return entries


def test_entry_follows_the_documented_construction() -> None:
    first = chain(1)[0]
    content = {"seq": 1, "time": 10.0, "kind": "k", "policy": "p", "detail": {"n": 1}}
    assert first.digest == sha256(canonical_json(content))
    assert first.chain == sha256(bytes(32), first.digest)
    KEY.verify_key().verify(first.signature, b"securetf-audit-v1\x00" + first.chain)


def test_valid_chain_returns_head() -> None:
    entries = chain(5)
    assert verify_audit_chain(entries, KEY.verify_key()) == entries[-1].chain
    assert verify_audit_chain(entries, KEY.verify_key(), expected_head=entries[-1].chain)


def test_wrong_key_names_the_first_entry() -> None:
    with pytest.raises(IntegrityError, match="seq 1 is not signed"):
        verify_audit_chain(chain(2), SigningKey.generate().verify_key())


def test_broken_link_is_named() -> None:
    entries = chain(3)
    relinked = make_audit_entry(bytes(32), 2, 20.0, "k", "p", {"n": 2}, KEY)
    with pytest.raises(IntegrityError, match="seq 2 does not link to seq 1"):
        verify_audit_chain([entries[0], relinked, entries[2]], KEY.verify_key())


def test_reordered_list_is_detected() -> None:
    entries = chain(3)
    with pytest.raises(IntegrityError, match="entry 2 has seq 3"):
        verify_audit_chain([entries[0], entries[2], entries[1]], KEY.verify_key())


def test_edited_detail_is_detected() -> None:
    entries = chain(3)
    entries[1] = dataclasses.replace(entries[1], detail={"n": 3})
    with pytest.raises(IntegrityError, match="seq 2 was edited"):
        verify_audit_chain(entries, KEY.verify_key())


def test_json_round_trip() -> None:
    for entry in chain(3):
        wire = audit_entry_to_json(entry)
        assert wire["chain"] == entry.chain.hex()
        assert audit_entry_from_json(wire) == entry


def test_integral_time_on_the_wire_still_verifies() -> None:
    entry = make_audit_entry(GENESIS_CHAIN, 1, 5, "k", None, {}, KEY)
    wire = audit_entry_to_json(entry) | {"time": 5}
    verify_audit_chain([audit_entry_from_json(wire)], KEY.verify_key())


@pytest.mark.parametrize(
    "change",
    [
        {"seq": "1"},
        {"seq": True},
        {"time": None},
        {"kind": 3},
        {"policy": 4},
        {"detail": []},
        {"digest": "zz"},
        {"chain": "00"},
        {"signature": None},
    ],
)
def test_malformed_wire_entry_is_refused(change: dict[str, Any]) -> None:
    wire = audit_entry_to_json(chain(1)[0]) | change
    with pytest.raises(IntegrityError):
        audit_entry_from_json(wire)

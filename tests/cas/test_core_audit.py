"""The CAS checks the audit log it serves to owners: a stored entry that does not match its
digest, its link or the head row is refused loudly, never served."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.errors import IntegrityError, UsageError

from .store.conftest import raw_sql
from .support import Clock, Owners, Runtime, owner_request, policy_cas


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime) -> Cas:
    cas = policy_cas(db_url, tmp_path, clock, owners)
    for _ in range(4):  # entries 2 to 5
        cas.provision(runtime.request(cas.nonce().nonce))
    return cas


def read(cas: Cas, owners: Owners, clock: Clock) -> object:
    return cas.audit("cancer", owner_request(cas, owners.carol, clock))


def test_pages_follow_the_cursor_and_stop_at_the_head(
    cas: Cas, owners: Owners, clock: Clock
) -> None:
    pages = [cas.audit("cancer", owner_request(cas, owners.carol, clock), a) for a in (3, 5, 9)]
    assert [[e["seq"] for e in p.entries] for p in pages] == [[4, 5], [], []]
    assert {p.head.seq for p in pages} == {5}
    with pytest.raises(UsageError, match="after"):
        cas.audit("cancer", owner_request(cas, owners.carol, clock), -1)


TAMPER = {
    # Attack: hide an owner's entry by labelling it with another policy.
    "relabelled": ["UPDATE audit_log SET policy = 'other' WHERE seq = 3"],
    "relabelled-to-none": ["UPDATE audit_log SET policy = NULL WHERE seq = 5"],
    # ... and with its digest made to match the new label: the link breaks instead.
    "relabelled-digest-copied": [
        "UPDATE audit_log SET policy = 'other', digest = (SELECT digest FROM audit_log "
        "WHERE seq = 2) WHERE seq = 3"
    ],
    "edited": ["UPDATE audit_log SET detail = '{}' WHERE seq = 4"],
    "gap": ["DELETE FROM audit_log WHERE seq = 3"],
    "last-entry-removed": ["DELETE FROM audit_log WHERE seq = 5"],
    "head-ahead": ["UPDATE audit_head SET seq = 6 WHERE id = 1"],
    "head-other-chain": [
        "UPDATE audit_head SET chain = (SELECT chain FROM audit_log WHERE seq = 4) WHERE id = 1"
    ],
    "entry-beyond-head": [
        "UPDATE audit_head SET seq = 4, "
        "chain = (SELECT chain FROM audit_log WHERE seq = 4) WHERE id = 1"
    ],
}


@pytest.mark.parametrize("tamper", sorted(TAMPER))
def test_a_tampered_log_is_refused_loudly(
    db_url: str,
    cas: Cas,
    owners: Owners,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    tamper: str,
) -> None:
    read(cas, owners, clock)  # intact: served
    for statement in TAMPER[tamper]:
        raw_sql(db_url, statement)
    with caplog.at_level(logging.ERROR), pytest.raises(IntegrityError, match="audit log"):
        read(cas, owners, clock)
    assert any(
        r.levelno >= logging.ERROR and "audit log" in r.getMessage() for r in caplog.records
    ), "the CAS must log a damaged audit log, not only answer the caller"

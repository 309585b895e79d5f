"""The CAS checks the audit log it serves to owners: a stored entry that does not match its
digest, its link or the head row is refused loudly, never served."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.errors import IntegrityError
from securetf.policy import sign_request

from .store.conftest import raw_sql
from .support import DATASET, Clock, Owners, Runtime, make_cas, policy_yaml, signed


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    cas = make_cas(db_url, tmp_path, clock)
    yaml = policy_yaml(owners)
    cas.apply_policy(yaml, [signed(owners.alice, yaml, clock.now, secrets=DATASET)], DATASET)
    runtime = Runtime(home=tmp_path / "home")
    for _ in range(4):  # entries 2 to 5
        cas.provision(runtime.request(cas.nonce().nonce))
    return cas


def read(cas: Cas, owners: Owners, clock: Clock) -> object:
    stored, _ = cas.policy("cancer")
    request = sign_request(
        owners.carol,
        action="audit",
        policy="cancer",
        version=stored.version,
        policy_hash=stored.hash,
        issued_at=int(clock.now),
    )
    return cas.audit("cancer", request)


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

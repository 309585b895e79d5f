"""Owners read the whole audit log through the SDK, page by page up to the head the CAS
holds, and refuse a log that was truncated, forked or altered in the CAS's database."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.cas import Cas, CasSettings
from securetf.cas.audit import GENESIS_CHAIN
from securetf.client import CasClient
from securetf.errors import AttestationError, IntegrityError, RollbackError
from securetf.policy import Policy, policy_hash

from .app_support import anonymous, owner_client
from .store.conftest import raw_sql
from .support import Clock, Owners, Runtime, policy_cas, policy_yaml, signed

PAGE = 3  # entries per page: the tests below need several pages


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners, CasSettings(audit_page=PAGE))


@pytest.fixture
def client(cas: Cas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CasClient]:
    monkeypatch.setenv("SECURETF_HOME", str(tmp_path / "owner-home"))
    with owner_client(cas) as client:
        yield client


def _kinds(client: CasClient, owners: Owners) -> list[str]:
    return [str(e["kind"]) for e in client.audit("cancer", owners.carol).entries if "kind" in e]


def _provision(cas: Cas, runtime: Runtime, times: int = 1) -> None:
    for _ in range(times):
        cas.provision(runtime.request(cas.nonce().nonce))


def _update(cas: Cas, owners: Owners, clock: Clock) -> None:
    v1 = cas.policy("cancer")[0].yaml
    v2 = policy_yaml(
        owners, version=2, predecessor=policy_hash(Policy.from_yaml(v1)), extra_env="\n      X: y"
    )
    sigs = [signed(owners.alice, v2, clock.now), signed(owners.bob, v2, clock.now)]
    assert cas.apply_policy(v2, sigs, {}).status == "active"


def _head(db_url: str) -> int:
    return int(raw_sql(db_url, "SELECT seq FROM audit_head")[0][0])


def test_a_flood_of_refusals_does_not_push_later_entries_out_of_sight(
    cas: Cas, client: CasClient, owners: Owners, clock: Clock, runtime: Runtime
) -> None:
    """Attack (anonymous client): more bad provisioning calls than a page holds, then a real
    provisioning and a policy update. The owner's read must reach them."""
    flood = anonymous(cas)
    for _ in range(2 * PAGE + 1):
        bad = runtime.request(bytes(40)).model_dump(mode="json")  # a nonce never issued
        assert flood.post("/v1/provision", json=bad).status_code == 403
    _provision(cas, runtime)
    _update(cas, owners, clock)
    kinds = _kinds(client, owners)
    assert kinds[-2:] == ["provision.accepted", "policy.updated"]
    assert kinds.count("provision.refused") == 2 * PAGE + 1


def test_every_page_names_the_head_and_the_read_stops_there(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime, db_url: str
) -> None:
    _provision(cas, runtime, 2 * PAGE)
    trail = client.audit("cancer", owners.carol)
    assert trail.head.seq == _head(db_url) == 2 * PAGE + 1
    assert [e["seq"] for e in trail.entries] == list(range(1, trail.head.seq + 1))


def test_the_kept_head_is_a_private_file_and_moves_forward(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime, tmp_path: Path
) -> None:
    first = client.audit("cancer", owners.carol).head
    _provision(cas, runtime, PAGE + 1)
    second = client.audit("cancer", owners.carol).head
    assert second.seq == first.seq + PAGE + 1
    (kept,) = (tmp_path / "owner-home" / "audit-heads").rglob("*.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert second.chain.hex() in kept.read_text()


@pytest.mark.parametrize("then", ["nothing", "new-entries"])
def test_a_log_truncated_in_the_database_is_refused(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime, db_url: str, then: str
) -> None:
    """Attack (database administrator): after an owner's read, delete the last entries and
    move the head row back. What remains is a valid, signed chain, only shorter; with
    ``new-entries`` the CAS goes on appending past the old length."""
    _provision(cas, runtime, PAGE + 1)
    client.audit("cancer", owners.carol)  # keeps the head it verified
    keep = _head(db_url) - 2
    raw_sql(db_url, "DELETE FROM audit_log WHERE seq > :keep", keep=keep)
    raw_sql(
        db_url,
        "UPDATE audit_head SET seq = :keep, "
        "chain = (SELECT chain FROM audit_log WHERE seq = :keep) WHERE id = 1",
        keep=keep,
    )
    if then == "new-entries":
        _provision(cas, runtime, 3)
    with pytest.raises(RollbackError, match="rolled back or forked"):
        client.audit("cancer", owners.carol)


def test_a_forked_log_is_refused_and_the_kept_head_stays(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime, db_url: str, clock: Clock
) -> None:
    """Attack (database administrator with a CAS that signs for it, such as one re-created
    with the same audit key): replace the history with another validly signed one, longer
    than what the owner saw."""
    _provision(cas, runtime, 2)
    client.audit("cancer", owners.carol)  # keeps the head it verified
    seen = _head(db_url)
    raw_sql(db_url, "DELETE FROM audit_log")
    raw_sql(db_url, "UPDATE audit_head SET seq = 0, chain = :g WHERE id = 1", g=GENESIS_CHAIN)
    with cas._store.transaction() as tx:
        for i in range(seen + 2):
            tx.append_audit("policy.created", "cancer", {"other": i}, clock.now)
    with pytest.raises(RollbackError, match="rolled back or forked"):
        client.audit("cancer", owners.carol)
    with pytest.raises(RollbackError, match="rolled back or forked"):  # still, next time
        client.audit("cancer", owners.carol)


def test_a_relabelled_entry_is_refused_not_hidden(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime, db_url: str
) -> None:
    """Attack (database administrator): relabel the owner's ``provision.accepted`` entry to
    another policy, so the owner would see only its digest (and the chain still links)."""
    _provision(cas, runtime)
    (seq,) = raw_sql(db_url, "SELECT seq FROM audit_log WHERE kind = 'provision.accepted'")[0]
    raw_sql(db_url, "UPDATE audit_log SET policy = 'other' WHERE seq = :s", s=seq)
    with pytest.raises(IntegrityError, match="audit log"):
        client.audit("cancer", owners.carol)


def test_the_trail_holds_the_owners_entries_only(
    cas: Cas, client: CasClient, owners: Owners, runtime: Runtime
) -> None:
    _provision(cas, runtime)
    with pytest.raises(AttestationError):
        cas.provision(runtime.request(bytes(40)).model_copy(update={"policy": "other"}))
    _provision(cas, runtime)
    trail = client.audit("cancer", owners.carol)
    assert trail.head.seq == 4
    assert [e["seq"] for e in trail.entries] == [1, 2, 4]
    assert {e["policy"] for e in trail.entries} == {"cancer"}

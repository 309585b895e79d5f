"""Replicas: several CAS cores (each a process in production) on one database and one master
key. A nonce any of them issued is good at every other, and spent once for all of them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.errors import AttestationError, Error

from .store.conftest import raw_sql
from .support import SERVE_MEASUREMENT, Clock, Owners, Runtime, audit_view, make_cas, policy_cas


@pytest.fixture
def replicas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> tuple[Cas, Cas]:
    """Two CAS cores on one database, with one data directory (master key)."""
    return policy_cas(db_url, tmp_path, clock, owners), make_cas(db_url, tmp_path, clock)


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime(home=tmp_path / "home")


def test_a_nonce_of_one_replica_provisions_at_another_once(
    replicas: tuple[Cas, Cas], runtime: Runtime
) -> None:
    a, b = replicas
    req = runtime.request(a.nonce().nonce)
    b.provision(req)
    with pytest.raises(AttestationError, match="nonce is unknown, used or expired"):
        a.provision(req)
    with pytest.raises(AttestationError, match="nonce is unknown, used or expired"):
        b.provision(req)


def test_a_refused_request_uses_its_nonce_up_at_its_replica(
    replicas: tuple[Cas, Cas], runtime: Runtime
) -> None:
    """At the replica that refused it, a nonce is used up (in memory: no database write per
    refusal). Another replica may still grant it once, to the runtime whose keys the evidence
    binds; never twice."""
    a, b = replicas
    nonce = a.nonce().nonce
    with pytest.raises(AttestationError):  # the report data binds another app than asked
        a.provision(runtime.request(nonce, bound_measurement=SERVE_MEASUREMENT))
    with pytest.raises(AttestationError, match="nonce is unknown, used or expired"):
        a.provision(runtime.request(nonce))
    b.provision(runtime.request(nonce))
    with pytest.raises(AttestationError, match="nonce is unknown, used or expired"):
        b.provision(runtime.request(nonce))


def test_concurrent_replays_across_replicas_are_granted_once(
    replicas: tuple[Cas, Cas], runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """One request sent 8 times at once, 4 to each replica: one certificate, one record."""
    a, b = replicas
    req = runtime.request(a.nonce().nonce)
    start = threading.Barrier(8)

    def send(i: int) -> int | None:
        start.wait()
        try:
            return (a if i % 2 else b).provision(req).serial
        except Error:
            return None

    with ThreadPoolExecutor(8) as pool:
        serials = [s for s in pool.map(send, range(8)) if s is not None]
    assert len(serials) == 1
    accepted = [e for e in audit_view(a, owners, clock) if e.get("kind") == "provision.accepted"]
    assert len(accepted) == 1


def test_a_nonce_of_another_master_key_is_refused(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime
) -> None:
    """A CAS of another deployment (another master key) issues nonces this one refuses."""
    cas = policy_cas(db_url, tmp_path, clock, owners)
    (tmp_path / "other").mkdir()
    other = make_cas(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other", clock)
    with pytest.raises(AttestationError, match="nonce is unknown, used or expired"):
        cas.provision(runtime.request(other.nonce().nonce))


def _refusals(cas: Cas, owners: Owners, clock: Clock) -> list[dict[str, object]]:
    return [e for e in audit_view(cas, owners, clock) if e.get("kind") == "provision.refused"]


def _flood(cas: Cas, runtime: Runtime, source: str, count: int) -> None:
    bad = runtime.request(bytes(40))  # a nonce never issued
    for _ in range(count):
        with pytest.raises(AttestationError):
            cas.provision(bad, source)


def test_the_audited_refusals_of_a_source_are_limited_across_replicas(
    replicas: tuple[Cas, Cas], runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """Attack: a flood of bad requests from one address, spread over both replicas. Each
    replica's own gate would let ``limit`` through; together they write ``limit``."""
    a, b = replicas
    limit = a.settings.audit_refusals_per_source
    _flood(a, runtime, "203.0.113.7", limit)
    _flood(b, runtime, "203.0.113.7", limit)
    assert len(_refusals(a, owners, clock)) == limit
    _flood(b, runtime, "198.51.100.9", 1)  # another source is not held back
    assert len(_refusals(a, owners, clock)) == limit + 1
    # The next window: b's first entry for the source says how many it left out.
    clock.now += a.settings.audit_refusal_window_seconds
    _flood(b, runtime, "203.0.113.7", 1)
    assert _refusals(a, owners, clock)[-1]["detail"]["suppressed"] == limit  # type: ignore[index]


def test_a_forged_refusal_count_does_not_silence_the_audit(
    db_url: str, replicas: tuple[Cas, Cas], runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """Attack (database access): the count of a source's window raised to the limit, to
    keep its refusals out of the audit log. The row's MAC fails: it counts as none."""
    a, _ = replicas
    _flood(a, runtime, "203.0.113.7", 1)
    raw_sql(db_url, "UPDATE refusal_windows SET written = 1000")
    _flood(a, runtime, "203.0.113.7", 1)
    assert len(_refusals(a, owners, clock)) == 2

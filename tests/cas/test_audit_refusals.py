"""Refusals of anonymous callers reach the audit log small and rate-limited per source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.cas._records import AuditEntry
from securetf.cas._refusals import excerpt, excerpt_detail
from securetf.errors import Error
from securetf.policy import canonical_json
from securetf.protocol import TagUpdate

from .app_support import anonymous
from .support import Clock, Owners, Runtime, make_cas, policy_cas

HUGE = 3 * 1024 * 1024


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _log(cas: Cas) -> list[AuditEntry]:
    with cas._store.transaction() as tx:
        return tx.audit_entries(0, 1_000_000)


def _refusals(cas: Cas) -> list[AuditEntry]:
    return [e for e in _log(cas) if e.kind.endswith(".refused")]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("field", ["service", "tee", "policy", "volume"])
def test_a_huge_field_reaches_the_log_as_a_short_excerpt(
    cas: Cas, runtime: Runtime, field: str
) -> None:
    """Attack (anonymous client): a 3 MB name in a request the CAS refuses. The refusal's
    reason repeats what the caller sent; the entry must stay small all the same."""
    nonce = cas.nonce().nonce
    if field == "volume":
        bad = TagUpdate(
            policy="cancer",
            volume="v" * HUGE,
            serial=1,
            expected=None,
            tag="t",
            version=1,
            signature=b"x",
        )
        with pytest.raises(Error):
            cas.update_tag(bad)
    else:
        req = runtime.request(nonce).model_copy(update={field: field[0] * HUGE})
        with pytest.raises(Error):
            cas.provision(req)
    (entry,) = _refusals(cas)
    assert len(canonical_json(entry.detail)) < 4096
    assert max(map(len, _strings(entry.detail))) <= cas.settings.audit_detail_chars + 32
    assert "characters" in json.dumps(entry.detail)  # says it was cut, and from what size


def test_control_characters_are_escaped(cas: Cas, runtime: Runtime) -> None:
    """Attack: terminal escapes and line breaks in a name, for whoever prints the log."""
    evil = "train\n\x1b[2J\x00\u202eX\ud800"
    with pytest.raises(Error):
        cas.provision(runtime.request(cas.nonce().nonce).model_copy(update={"service": evil}))
    (entry,) = _refusals(cas)
    assert entry.detail["service"] == "train\\n\\x1b[2J\\x00\\u202eX\\ud800"
    assert all(c.isprintable() for s in _strings(entry.detail) for c in s)


def test_refusals_per_source_are_rate_limited_and_counted(
    cas: Cas, runtime: Runtime, clock: Clock
) -> None:
    """Attack (anonymous client): a stream of bad provisioning calls from one address. Each
    still gets its 403; only the first few per minute become audit entries, and the next
    entry of that source says how many were left out."""
    flood = anonymous(cas, "203.0.113.7")
    bad = runtime.request(bytes(40)).model_dump(mode="json")  # a nonce never issued
    sent = 40
    for _ in range(sent):
        assert flood.post("/v1/provision", json=bad).status_code == 403
    written = len(_refusals(cas))
    assert written < sent
    limit = cas.settings.audit_refusals_per_source
    assert written == limit
    # Another address is not held back by the first one.
    assert anonymous(cas, "198.51.100.9").post("/v1/provision", json=bad).status_code == 403
    assert len(_refusals(cas)) == limit + 1
    # A new window: the first entry carries the count of those left out.
    clock.now += cas.settings.audit_refusal_window_seconds + 1
    assert flood.post("/v1/provision", json=bad).status_code == 403
    last = _refusals(cas)[-1]
    assert last.detail["source"] == "203.0.113.7"
    assert last.detail["suppressed"] == sent - limit


def test_the_sources_tracked_are_bounded(db_url: str, tmp_path: Path, clock: Clock) -> None:
    """Attack (anonymous client with many addresses): the table of sources stays bounded;
    beyond it refusals are counted, not written."""
    from securetf.cas import CasSettings

    settings = CasSettings(audit_refusals_per_source=1, audit_refusal_sources=3)
    cas = make_cas(db_url, tmp_path, clock, settings)
    runtime = Runtime(home=tmp_path / "home")
    bad = runtime.request(bytes(40))
    for i in range(10):
        with pytest.raises(Error):
            cas.provision(bad, source=f"192.0.2.{i}")
    assert len(_refusals(cas)) == 3
    clock.now += settings.audit_refusal_window_seconds + 1
    with pytest.raises(Error):
        cas.provision(bad, source="192.0.2.200")
    assert len(_refusals(cas)) == 4
    assert _refusals(cas)[-1].detail["suppressed_other_sources"] == 7


def test_the_excerpt_limit_at_its_edge() -> None:
    assert excerpt("a" * 256, 256) == "a" * 256
    assert excerpt("a" * 257, 256) == "a" * 256 + "... [257 characters]"
    assert excerpt("\n" * 200, 256) == "\\n" * 128 + "... [200 characters]"  # escapes count
    assert excerpt_detail({"n": 10**3000, "ok": 2**63 - 1, "b": True}, 8) == {
        "n": "10000000... [3001 characters]",
        "ok": 2**63 - 1,
        "b": True,
    }

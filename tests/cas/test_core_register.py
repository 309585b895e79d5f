"""Owners register the state of a volume (docs/cas.md, "Registering a volume's state"), on
SQLite and PostgreSQL: signed, for one volume, fresh, never backwards, audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.crypto import SigningKey
from securetf.errors import NotFoundError, PolicyError, RollbackError
from securetf.policy import GovernanceError, SignedRequest

from .support import Clock, Owners, Runtime, audit_view, owner_request, policy_cas, tag_update

A, B, C = ("sha256:" + d * 32 for d in ("0a", "0b", "0c"))


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _request(
    cas: Cas, key: SigningKey, clock: Clock, volume: str, detail: dict[str, str | int]
) -> SignedRequest:
    return owner_request(cas, key, clock, "register", volume, detail)


def _register(
    cas: Cas, key: SigningKey, clock: Clock, tag: str, version: int, volume: str = "dataset"
) -> tuple[str | None, str]:
    done = cas.register_tag(
        "cancer", volume, _request(cas, key, clock, volume, {"tag": tag, "version": version})
    )
    return done.previous, done.tag


def _granted(cas: Cas, tmp_path: Path, volume: str) -> tuple[str | None, int]:
    runtime = Runtime(home=tmp_path / "home")
    grant = runtime.open(cas.provision(runtime.request(cas.nonce().nonce))).volumes[volume]
    return grant.tag, grant.version


def _audit(cas: Cas, owners: Owners, clock: Clock) -> list[dict[str, object]]:
    return [e for e in audit_view(cas, owners, clock) if "kind" in e]


def test_a_registered_state_is_what_runtimes_are_given_and_it_only_moves_forward(
    cas: Cas, owners: Owners, clock: Clock, tmp_path: Path
) -> None:
    assert _granted(cas, tmp_path, "dataset") == (None, 0)
    assert _register(cas, owners.bob, clock, A, 1) == (None, A)
    assert _granted(cas, tmp_path, "dataset") == (A, 1)
    # The same state again (another owner, a retry) is fine and changes nothing.
    assert _register(cas, owners.alice, clock, A, 1) == (A, A)
    # Never backwards: an older version, or another state at the recorded version.
    with pytest.raises(RollbackError, match="backwards"):
        _register(cas, owners.bob, clock, B, 1)
    assert _register(cas, owners.bob, clock, C, 3) == (A, C)
    with pytest.raises(RollbackError, match="recorded at version 3"):
        _register(cas, owners.bob, clock, B, 2)
    assert _granted(cas, tmp_path, "dataset") == (C, 3)
    entries = _audit(cas, owners, clock)
    registered = [e["detail"] for e in entries if e["kind"] == "tag.registered"]
    assert registered == [
        {"volume": "dataset", "from": None, "to": A, "version": 1, "owner": "bob"},
        {"volume": "dataset", "from": A, "to": A, "version": 1, "owner": "alice"},
        {"volume": "dataset", "from": A, "to": C, "version": 3, "owner": "bob"},
    ]
    refused = [e["detail"] for e in entries if e["kind"] == "tag.refused"]
    assert [d["volume"] for d in refused] == ["dataset", "dataset"]  # type: ignore[index]
    assert "backwards" in str(refused[0])


@pytest.mark.parametrize(
    "case",
    ["other-volume", "replay", "not-an-owner", "unknown-volume", "no-version", "not-a-tag", "zero"],
)
def test_refused_registrations_change_nothing_and_are_audited(
    cas: Cas, owners: Owners, clock: Clock, tmp_path: Path, case: str
) -> None:
    """Attacks on the endpoint: a signature made for another volume, a replayed request,
    a stranger's key, and malformed states. None of them moves the tag."""
    state: dict[str, str | int] = {"tag": B, "version": 2}
    volume, request = "dataset", _request(cas, owners.bob, clock, "dataset", state)
    expected: type[Exception] = GovernanceError
    if case == "other-volume":
        volume = "model"  # bob signed for the dataset
    elif case == "replay":
        request = _request(cas, owners.bob, clock, "dataset", {"tag": A, "version": 1})
        cas.register_tag("cancer", "dataset", request)
    elif case == "not-an-owner":
        request = _request(cas, SigningKey.generate(), clock, "dataset", state)
    elif case == "unknown-volume":
        volume, expected = "nope", NotFoundError
        request = _request(cas, owners.bob, clock, "nope", state)
    else:
        expected = PolicyError
        bad: dict[str, dict[str, str | int]] = {
            "no-version": {"tag": B},
            "not-a-tag": {"tag": "sha256:" + "0B" * 32, "version": 2},
            "zero": {"tag": B, "version": 0},
        }
        request = _request(cas, owners.bob, clock, "dataset", bad[case])
    before = _granted(cas, tmp_path, "dataset")
    with pytest.raises(expected):
        cas.register_tag("cancer", volume, request)
    assert _granted(cas, tmp_path, "dataset") == before
    assert _audit(cas, owners, clock)[-2]["kind"] == "tag.refused"  # then provision.accepted


def test_a_registration_and_a_runtime_commit_never_lose_each_other(
    cas: Cas, owners: Owners, clock: Clock, tmp_path: Path
) -> None:
    """The model volume is written by ``train``: an owner's registration and an instance's
    commit both compare-and-swap, so neither overwrites a state it did not see."""
    runtime = Runtime(home=tmp_path / "home")
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial

    def commit(expected: str | None, tag: str, version: int) -> None:
        cas.update_tag(tag_update(runtime, serial, "model", expected, tag, version))

    commit(None, A, 1)
    with pytest.raises(RollbackError):  # the owner registers another version 1
        _register(cas, owners.bob, clock, B, 1, volume="model")
    assert _register(cas, owners.bob, clock, B, 2, volume="model") == (A, B)
    with pytest.raises(RollbackError):  # the run that started at A cannot commit over B
        commit(A, C, 2)
    assert _granted(cas, tmp_path, "model") == (B, 2)

"""Creating and updating policies through the CAS core, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import GovernanceError, Policy, policy_hash

from .support import DATASET_KEY, Clock, Owners, make_cas, policy_yaml, signed


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock) -> Cas:
    return make_cas(db_url, tmp_path, clock)


def _create(cas: Cas, owners: Owners, clock: Clock) -> bytes:
    yaml = policy_yaml(owners)
    result = cas.apply_policy(
        yaml, [signed(owners.alice, yaml, clock.now)], {"dataset-key": DATASET_KEY}
    )
    assert result.status == "active"
    return yaml


def _unchanged(cas: Cas, versions: int) -> None:
    history, pending = cas.history("cancer")
    assert len(history) == versions
    assert pending is None


def test_create_by_an_owner(cas: Cas, owners: Owners, clock: Clock) -> None:
    yaml = _create(cas, owners, clock)
    stored, ca = cas.policy("cancer")
    assert stored.yaml == yaml
    assert stored.hash == policy_hash(Policy.from_yaml(yaml))
    assert b"BEGIN CERTIFICATE" in ca


@pytest.mark.parametrize(
    "case", ["non-owner", "replay", "missing-import", "unknown-field", "wrong-size-secret"]
)
def test_create_refusals_change_nothing(cas: Cas, owners: Owners, clock: Clock, case: str) -> None:
    yaml = policy_yaml(owners)
    secrets = {"dataset-key": DATASET_KEY}
    sig = signed(owners.alice, yaml, clock.now)
    if case == "non-owner":
        from securetf.crypto import SigningKey

        sig = signed(SigningKey.generate(), yaml, clock.now)
    elif case == "missing-import":
        secrets = {}
    elif case == "unknown-field":
        yaml = yaml.replace(b"update_threshold: 2", b"update_threshold: 2\n  colour: red")
    elif case == "wrong-size-secret":
        secrets = {"dataset-key": b"short"}
    elif case == "replay":
        cas.apply_policy(yaml, [sig], secrets)
        v2 = policy_yaml(owners, version=2, predecessor=policy_hash(Policy.from_yaml(yaml)))
        update = signed(owners.alice, v2, clock.now)
        assert cas.apply_policy(v2, [update], {}).status == "pending"
        with pytest.raises(GovernanceError, match="already used"):
            cas.apply_policy(v2, [update], {})  # the same signed request, sent again
        pending = cas.history("cancer")[1]
        assert pending is not None
        assert len(pending.approvals) == 1
        return
    with pytest.raises((PolicyError, GovernanceError)):
        cas.apply_policy(yaml, [sig], secrets)
    with pytest.raises(NotFoundError):
        cas.policy("cancer")


def test_update_needs_threshold_then_approval(cas: Cas, owners: Owners, clock: Clock) -> None:
    v1 = _create(cas, owners, clock)
    v2 = policy_yaml(
        owners,
        version=2,
        predecessor=policy_hash(Policy.from_yaml(v1)),
        extra_env='\n      MODE: "fast"',
    )
    first = cas.apply_policy(v2, [signed(owners.alice, v2, clock.now)], {})
    assert (first.status, first.signatures, first.needed) == ("pending", 1, 2)
    assert cas.policy("cancer")[0].version == 1  # not in force yet
    # The same owner approving again does not count twice.
    again = cas.approve_policy("cancer", signed(owners.alice, v2, clock.now, "approve"))
    assert (again.status, again.signatures) == ("pending", 1)
    clock.now += 3600  # long after the first request expired, approval still completes it
    done = cas.approve_policy("cancer", signed(owners.bob, v2, clock.now, "approve"))
    assert done.status == "active"
    assert cas.policy("cancer")[0].version == 2
    history, pending = cas.history("cancer")
    assert [v.version for v in history] == [1, 2]
    assert pending is None


def test_update_refusals(cas: Cas, owners: Owners, clock: Clock) -> None:
    from securetf.crypto import SigningKey

    v1 = _create(cas, owners, clock)
    good_pred = policy_hash(Policy.from_yaml(v1))
    wrong_pred = policy_yaml(owners, version=2, predecessor="sha256:" + "00" * 32)
    with pytest.raises(GovernanceError, match="predecessor"):
        cas.apply_policy(wrong_pred, [signed(owners.alice, wrong_pred, clock.now)], {})
    skip = policy_yaml(owners, version=3, predecessor=good_pred)
    with pytest.raises(GovernanceError, match="version"):
        cas.apply_policy(skip, [signed(owners.alice, skip, clock.now)], {})
    v2 = policy_yaml(owners, version=2, predecessor=good_pred)
    mallory = SigningKey.generate()
    with pytest.raises(GovernanceError, match="not an owner"):
        cas.apply_policy(v2, [signed(mallory, v2, clock.now)], {})
    _unchanged(cas, 1)


def test_replacing_an_imported_key_is_refused(cas: Cas, owners: Owners, clock: Clock) -> None:
    v1 = _create(cas, owners, clock)
    v2 = policy_yaml(owners, version=2, predecessor=policy_hash(Policy.from_yaml(v1)), threshold=1)
    with pytest.raises(PolicyError, match="cannot be replaced"):
        cas.apply_policy(
            v2,
            [signed(owners.alice, v2, clock.now), signed(owners.bob, v2, clock.now)],
            {"dataset-key": bytes(32)},
        )

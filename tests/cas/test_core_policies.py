"""Creating and updating policies through the CAS core, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import GovernanceError, Policy, SignedRequest, policy_hash

from .support import DATASET, DATASET_KEY, Clock, Owners, make_cas, policy_yaml, signed


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock) -> Cas:
    return make_cas(db_url, tmp_path, clock)


def _create(cas: Cas, owners: Owners, clock: Clock) -> bytes:
    yaml = policy_yaml(owners)
    result = cas.apply_policy(
        yaml, [signed(owners.alice, yaml, clock.now, secrets=DATASET)], DATASET
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
    sig = signed(owners.alice, yaml, clock.now, secrets=DATASET)
    if case == "non-owner":
        from securetf.crypto import SigningKey

        sig = signed(SigningKey.generate(), yaml, clock.now, secrets=DATASET)
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


def test_an_approval_counts_only_for_the_imported_value_it_signed(
    cas: Cas, owners: Owners, clock: Clock
) -> None:
    """Attack: alice proposes version 2 with a new imported key KA (pending); bob applies the
    same YAML with his own KB. Alice's approval must not make KB live."""
    v1 = _create(cas, owners, clock)
    v2 = policy_yaml(owners, version=2, predecessor=policy_hash(Policy.from_yaml(v1))).replace(
        b"secrets:\n", b"secrets:\n  new-key: {kind: volume-key, source: imported}\n"
    )
    ka, kb = {"new-key": b"A" * 32}, {"new-key": b"B" * 32}
    proposed = cas.apply_policy(v2, [signed(owners.alice, v2, clock.now, secrets=ka)], ka)
    assert proposed.status == "pending"
    # Bob's signature over KB is his own proposal: it does not inherit alice's approval.
    bobs = cas.apply_policy(v2, [signed(owners.bob, v2, clock.now, secrets=kb)], kb)
    assert (bobs.status, bobs.signatures) == ("pending", 1)
    assert cas.policy("cancer")[0].version == 1
    # A signature that commits to KA cannot carry KB either.
    with pytest.raises(GovernanceError, match="imported secret values"):
        cas.apply_policy(v2, [signed(owners.carol, v2, clock.now, secrets=ka)], kb)
    # Approving what is pending (KB) with alice's signature over it completes it, with KB.
    pending = cas.history("cancer")[1]
    assert pending is not None
    done = cas.approve_policy("cancer", signed(owners.alice, v2, clock.now, "approve", secrets=kb))
    assert done.status == "active"
    with cas._store.transaction() as tx:
        assert tx.get_secret("cancer", "new-key") == kb["new-key"]


def test_an_approval_of_other_imported_values_is_refused(
    cas: Cas, owners: Owners, clock: Clock
) -> None:
    v1 = _create(cas, owners, clock)
    v2 = policy_yaml(owners, version=2, predecessor=policy_hash(Policy.from_yaml(v1))).replace(
        b"secrets:\n", b"secrets:\n  new-key: {kind: volume-key, source: imported}\n"
    )
    ka, kb = {"new-key": b"A" * 32}, {"new-key": b"B" * 32}
    cas.apply_policy(v2, [signed(owners.alice, v2, clock.now, secrets=ka)], ka)
    with pytest.raises(GovernanceError, match="imported secret values"):
        cas.approve_policy("cancer", signed(owners.bob, v2, clock.now, "approve", secrets=kb))
    assert cas.policy("cancer")[0].version == 1


def test_a_policys_yaml_is_for_its_owners(cas: Cas, owners: Owners, clock: Clock) -> None:
    """Anyone may learn name, version, hash and CA; the YAML (owners' keys, measurements,
    file contents) and who approved what only an owner, with a request for that operation."""
    from securetf.crypto import SigningKey
    from securetf.policy import sign_request

    yaml = _create(cas, owners, clock)
    stored, _ = cas.policy("cancer")

    def request(key: SigningKey, action: str) -> SignedRequest:
        return sign_request(
            key,
            action=action,  # type: ignore[arg-type]
            policy="cancer",
            version=stored.version,
            policy_hash=stored.hash,
            issued_at=int(clock.now),
        )

    assert cas.show_policy("cancer", request(owners.bob, "show"))[0].yaml == yaml
    with pytest.raises(GovernanceError, match="not an owner"):
        cas.show_policy("cancer", request(SigningKey.generate(), "show"))
    with pytest.raises(GovernanceError, match="'audit' request"):
        cas.show_policy("cancer", request(owners.bob, "audit"))
    with pytest.raises(GovernanceError, match="not an owner"):
        cas.history("cancer", request(SigningKey.generate(), "history"))
    launch = cas.launch("cancer", "train")
    assert (launch.command, launch.code) == (["python", "train.py"], None)

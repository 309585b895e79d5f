"""A policy update replaces an imported key (a new version): instances get the new value,
and owners may read the previous one for the period the policy declares, not after."""

from __future__ import annotations

from pathlib import Path

import pytest

from securetf.cas.core import Cas
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import GovernanceError, Policy
from tests.cas.support import (
    DATASET_KEY,
    Clock,
    Owners,
    Runtime,
    audit_view,
    owner_request,
    policy_cas,
    policy_yaml,
    signed,
)

KEEP = 7 * 86400
NEW_KEY = bytes(range(100, 132))


def replace_dataset_key(cas: Cas, owners: Owners, clock: Clock, keep: int) -> None:
    """Owners apply the next version with a new dataset key (and ``keep`` declared)."""
    current = cas.policy("cancer")[0]
    yaml = policy_yaml(owners, version=current.version + 1, predecessor=current.hash)
    if keep:
        yaml = yaml.replace(
            b"dataset-key: {kind: volume-key, source: imported}",
            b"dataset-key: {kind: volume-key, source: imported, previous_readable_seconds: "
            + str(keep).encode()
            + b"}",
        )
    new = {"dataset-key": NEW_KEY}
    sigs = [signed(k, yaml, clock.now, secrets=new) for k in (owners.alice, owners.bob)]
    cas.apply_policy(yaml, sigs, new)


def read_previous(cas: Cas, owners: Owners, clock: Clock, who: str = "carol") -> bytes:
    key = getattr(owners, who)
    request = owner_request(cas, key, clock, "export", "dataset-key@previous")
    return cas.export_secret("cancer", "dataset-key@previous", request)


def test_a_replaced_key_stays_readable_to_owners_for_the_declared_period(tmp_path: Path) -> None:
    clock, owners = Clock(), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    runtime = Runtime(home=tmp_path / "home")
    before = runtime.open(cas.provision(runtime.request(cas.nonce().nonce)))
    assert before.volumes["dataset"].key == DATASET_KEY

    replace_dataset_key(cas, owners, clock, keep=KEEP)
    after = runtime.open(cas.provision(runtime.request(cas.nonce().nonce)))
    assert after.volumes["dataset"].key == NEW_KEY  # instances get the version in force
    assert read_previous(cas, owners, clock) == DATASET_KEY
    kinds = [e["kind"] for e in audit_view(cas, owners, clock)]
    assert "secret.replaced" in kinds

    clock.now += KEEP  # the period is over
    with pytest.raises(NotFoundError, match="was readable until"):
        read_previous(cas, owners, clock)


def test_only_owners_read_the_previous_value(tmp_path: Path) -> None:
    from securetf.crypto import SigningKey

    clock, owners = Clock(), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    replace_dataset_key(cas, owners, clock, keep=KEEP)
    mallory = SigningKey.generate()
    request = owner_request(cas, mallory, clock, "export", "dataset-key@previous")
    with pytest.raises(GovernanceError, match="not an owner"):
        cas.export_secret("cancer", "dataset-key@previous", request)
    # A request signed for the value in force does not read the previous one.
    request = owner_request(cas, owners.alice, clock, "export", "dataset-key")
    with pytest.raises(GovernanceError):
        cas.export_secret("cancer", "dataset-key@previous", request)


def test_without_a_declared_period_an_imported_key_is_never_replaced(tmp_path: Path) -> None:
    clock, owners = Clock(), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    with pytest.raises(PolicyError, match="previous_readable_seconds"):
        replace_dataset_key(cas, owners, clock, keep=0)
    assert cas.policy("cancer")[0].version == 1
    with pytest.raises(PolicyError, match="keeps no previous value"):
        read_previous(cas, owners, clock)


def test_a_generated_key_declares_no_previous_period() -> None:
    yaml = policy_yaml(Owners()).replace(
        b"source: generated, export_to_owners: true}",
        b"source: generated, export_to_owners: true, previous_readable_seconds: 60}",
    )
    with pytest.raises(PolicyError, match="imported keys only"):
        Policy.from_yaml(yaml)

"""What the CAS's public answers leave out: a policy's YAML, who approved it, and anything
derived from the secret values uploaded with a pending update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securetf.crypto import SigningKey, sha256
from securetf.errors import MeasurementError
from securetf.policy import Policy, policy_hash

from .app_support import anonymous, owner_client
from .support import (
    MEASUREMENT,
    SERVE_MEASUREMENT,
    Clock,
    Owners,
    Runtime,
    owner_request,
    policy_cas,
    policy_yaml,
    signed,
)


def test_a_pending_updates_imported_values_are_not_public(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners
) -> None:
    """Attack: anyone reads the pending update's history and gets the SHA-256 of the value
    uploaded with it (a weak imported value could then be guessed offline)."""
    cas = policy_cas(db_url, tmp_path, clock, owners)
    v1, _ = cas.policy("cancer")
    v2 = policy_yaml(owners, version=2, predecessor=v1.hash).replace(
        b"secrets:\n", b"secrets:\n  new-key: {kind: volume-key, source: imported}\n"
    )
    value = {"new-key": b"password" + bytes(24)}
    cas.apply_policy(v2, [signed(owners.alice, v2, clock.now, secrets=value)], value)
    public = anonymous(cas).get("/v1/policies/cancer/history").json()
    assert public["pending"]["version"] == 2
    assert public["pending"]["imports"] == {}
    assert public["pending"]["approved_by"] == []
    # An owner still sees what to sign, and approves it.
    with owner_client(cas) as client:
        history = client.history("cancer", owners.bob)
        assert history.pending is not None
        assert set(history.pending.imports) == {"new-key"}
        done = client.approve_policy("cancer", 2, owners.bob)
    assert done.status == "active"
    assert cas.policy("cancer")[0].hash == policy_hash(Policy.from_yaml(v2))


def test_a_stranger_is_not_told_who_the_owners_are(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners
) -> None:
    """Attack: a non-owner sends a signed ``show`` and reads the owners' names in the
    refusal (who owns a policy is not public)."""
    cas = policy_cas(db_url, tmp_path, clock, owners)
    refused = anonymous(cas).post(
        "/v1/policies/cancer/show",
        json=json.loads(owner_request(cas, SigningKey.generate(), clock, "show").to_json()),
    )
    assert refused.status_code == 400
    assert "not an owner" in refused.json()["error"]
    for name in ("alice", "bob", "carol"):
        assert name not in refused.json()["error"]


def test_a_runtime_of_unlisted_code_learns_its_measurement_not_the_policys(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime
) -> None:
    """Attack: a runtime of code no service lists reads the measurements the policy allows
    in the refusal. It is told only that its own, named as a policy writes it, is not
    listed; the error keeps its class across HTTP, so ``securetf run`` can add its hint."""
    cas = policy_cas(db_url, tmp_path, clock, owners)
    unlisted = sha256(b"code that no service of the policy lists")
    other = Runtime(home=runtime.home, measurement=unlisted)
    with owner_client(cas) as client, pytest.raises(MeasurementError) as refused:
        client.provision(other.request(client.nonce().nonce))
    message = str(refused.value)
    assert f"the app measurement sha256:{unlisted.hex()} is not one that service 'train'" in message
    for listed in (MEASUREMENT, SERVE_MEASUREMENT):
        assert listed.hex() not in message

"""The database administrator's attacks: the CAS decides only from state it can authenticate.

Each test writes the database directly (as a PostgreSQL operator or whoever restores a
backup could), without the master key, then asks the CAS to act. The CAS must refuse,
loudly (an audit entry, an error), and release nothing. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from securetf.cas import Cas
from securetf.crypto import SigningKey, sha256
from securetf.crypto.x509ca import new_ca
from securetf.errors import Error
from securetf.policy import Policy, policy_hash, sign_request
from securetf.protocol import TagUpdate
from tests.cas.store.conftest import raw_sql

from .support import (
    MEASUREMENT,
    SERVE_MEASUREMENT,
    Clock,
    Owners,
    Runtime,
    make_cas,
    policy_cas,
    policy_yaml,
    signed,
    tag_update,
)

MALLORY_MEASUREMENT = sha256(b"mallory's app")


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _tag(runtime: Runtime, serial: int, expected: str | None, tag: str, version: int) -> TagUpdate:
    return tag_update(runtime, serial, "model", expected, tag, version)


def _kinds(cas: Cas) -> list[str]:
    with cas._store.transaction() as tx:
        return [e.kind for e in tx.audit_entries(0)]


def _refused_loudly(cas: Cas, act: Callable[[], object]) -> None:
    before = _kinds(cas).count("state.tampered")
    with pytest.raises(Error, match="changed outside the CAS"):
        act()
    assert _kinds(cas).count("state.tampered") == before + 1


def test_a_policy_version_inserted_in_the_database_releases_nothing(
    cas: Cas, db_url: str, owners: Owners, clock: Clock, tmp_path: Path
) -> None:
    """The issue's critical attack: a version 2 naming mallory as owner, with his own
    measurement and no owner signature, inserted as a row."""
    mallory = SigningKey.generate()
    current, _ = cas.policy("cancer")
    forged = (
        policy_yaml(owners, version=2, predecessor=current.hash, measurement=MALLORY_MEASUREMENT)
        .replace(
            owners.alice.verify_key().to_text().encode(), mallory.verify_key().to_text().encode()
        )
        .replace(b"update_threshold: 2", b"update_threshold: 1")
    )
    raw_sql(
        db_url,
        "INSERT INTO policies (name, version, hash, yaml, approvals, created_at) "
        "VALUES ('cancer', 2, :hash, :yaml, '[]', :now)",
        hash=policy_hash(Policy.from_yaml(forged)),
        yaml=forged,
        now=clock.now,
    )
    # The CAS does not serve it as the version in force...
    _refused_loudly(cas, lambda: cas.policy("cancer"))
    # ...does not provision mallory's code with the policy's secrets...
    mallory_runtime = Runtime(home=tmp_path / "home", measurement=MALLORY_MEASUREMENT)
    _refused_loudly(cas, lambda: cas.provision(mallory_runtime.request(cas.nonce().nonce)))
    # ...and does not let him export the model key.
    read = sign_request(
        mallory,
        action="export",
        policy="cancer",
        version=2,
        policy_hash=policy_hash(Policy.from_yaml(forged)),
        issued_at=int(clock.now),
        target="model-key",
    )
    _refused_loudly(cas, lambda: cas.export_secret("cancer", "model-key", read))


def _update_to_v2(cas: Cas, owners: Owners, clock: Clock) -> None:
    current, _ = cas.policy("cancer")
    v2 = policy_yaml(owners, version=2, predecessor=current.hash, extra_env='\n      V: "2"')
    result = cas.apply_policy(
        v2, [signed(owners.alice, v2, clock.now), signed(owners.bob, v2, clock.now)], {}
    )
    assert result.status == "active"


def _row(db_url: str, sql: str, **params: Any) -> dict[str, Any]:
    rows = raw_sql(db_url, sql, **params)
    assert len(rows) == 1
    return dict(rows[0]._mapping)


def test_deleting_the_newest_version_does_not_put_an_older_one_in_force(
    cas: Cas, db_url: str, owners: Owners, clock: Clock
) -> None:
    _update_to_v2(cas, owners, clock)
    raw_sql(db_url, "DELETE FROM policies WHERE name = 'cancer' AND version = 2")
    _refused_loudly(cas, lambda: cas.policy("cancer"))
    _refused_loudly(cas, lambda: cas.history("cancer"))


def test_a_version_edited_in_place_is_refused(cas: Cas, db_url: str) -> None:
    raw_sql(
        db_url,
        "UPDATE policies SET yaml = :yaml WHERE name = 'cancer'",
        yaml=_row(db_url, "SELECT yaml FROM policies WHERE name = 'cancer'")["yaml"]
        + b"\n# edited\n",
    )
    _refused_loudly(cas, lambda: cas.policy("cancer"))


def test_a_ca_certificate_swapped_in_the_database_is_refused(cas: Cas, db_url: str) -> None:
    """Clients trust the CA certificate the CAS shows; the database must not choose it."""
    _key, other = new_ca("mallory CA", now=0, valid_days=1)
    raw_sql(db_url, "UPDATE cas SET cert_pem = :pem WHERE policy = 'cancer'", pem=other)
    _refused_loudly(cas, lambda: cas.policy("cancer"))


def test_a_replayed_older_tag_row_is_refused(cas: Cas, db_url: str, runtime: Runtime) -> None:
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    cas.update_tag(_tag(runtime, serial, None, "sha256:" + "01" * 32, 1))
    old = _row(db_url, "SELECT tag, version, updated_at FROM volume_tags WHERE volume = 'model'")
    cas.update_tag(_tag(runtime, serial, "sha256:" + "01" * 32, "sha256:" + "02" * 32, 2))
    raw_sql(
        db_url,
        "UPDATE volume_tags SET tag = :tag, version = :version, updated_at = :updated_at "
        "WHERE volume = 'model'",
        **old,
    )
    _refused_loudly(cas, lambda: cas.provision(runtime.request(cas.nonce().nonce, instance=1)))


@pytest.mark.parametrize("how", ["delete", "rewind"])
def test_a_deleted_or_rewound_tag_cannot_be_moved_from_scratch(
    cas: Cas, db_url: str, runtime: Runtime, how: str
) -> None:
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    cas.update_tag(_tag(runtime, serial, None, "sha256:" + "01" * 32, 5))
    if how == "delete":
        raw_sql(db_url, "DELETE FROM volume_tags WHERE volume = 'model'")
        again = _tag(runtime, serial, None, "sha256:" + "09" * 32, 1)
    else:
        raw_sql(db_url, "UPDATE volume_tags SET version = 0 WHERE volume = 'model'")
        again = _tag(runtime, serial, "sha256:" + "01" * 32, "sha256:" + "09" * 32, 1)
    _refused_loudly(cas, lambda: cas.update_tag(again))


def test_an_instance_inserted_in_the_database_cannot_move_tags(
    cas: Cas, db_url: str, runtime: Runtime, clock: Clock
) -> None:
    cas.provision(runtime.request(cas.nonce().nonce))
    intruder = Runtime(home=runtime.home)
    raw_sql(
        db_url,
        "INSERT INTO instances (serial, policy, policy_version, service, instance, "
        "public_key_der, expires_at, created_at, tee, measurement) VALUES "
        "(4242, 'cancer', 1, 'train', 1, :key, :expires, :now, 'sim', :measurement)",
        key=intruder.tls.public_der(),
        measurement=MEASUREMENT,
        expires=clock.now + 3600,
        now=clock.now,
    )
    _refused_loudly(
        cas, lambda: cas.update_tag(_tag(intruder, 4242, None, "sha256:" + "01" * 32, 1))
    )


def test_an_instance_relabelled_to_another_service_cannot_move_tags(
    cas: Cas, db_url: str, runtime: Runtime
) -> None:
    """serve mounts the model read-only; relabelled as train it would move the model's tag."""
    serve = Runtime(home=runtime.home, measurement=SERVE_MEASUREMENT)
    serial = cas.provision(serve.request(cas.nonce().nonce, service="serve")).serial
    raw_sql(db_url, "UPDATE instances SET service = 'train' WHERE serial = :s", s=serial)
    _refused_loudly(
        cas, lambda: cas.update_tag(_tag(serve, serial, None, "sha256:" + "01" * 32, 1))
    )


def test_a_secret_copied_into_another_row_is_refused(
    cas: Cas, db_url: str, runtime: Runtime
) -> None:
    sealed = _row(db_url, "SELECT sealed FROM secrets WHERE name = 'api-token'")["sealed"]
    raw_sql(db_url, "UPDATE secrets SET sealed = :s WHERE name = 'model-key'", s=sealed)
    _refused_loudly(cas, lambda: cas.provision(runtime.request(cas.nonce().nonce)))


def test_a_pending_update_inserted_in_the_database_is_refused(
    cas: Cas, db_url: str, owners: Owners, clock: Clock
) -> None:
    current, _ = cas.policy("cancer")
    v2 = policy_yaml(owners, version=2, predecessor=current.hash, measurement=MALLORY_MEASUREMENT)
    approval = signed(owners.alice, v2, clock.now)  # a signature mallory could not make...
    raw_sql(
        db_url,
        "INSERT INTO pending_updates (name, version, hash, yaml, approvals, created_at) "
        "VALUES ('cancer', 2, :hash, :yaml, :approvals, :now)",
        hash=policy_hash(Policy.from_yaml(v2)),
        yaml=v2,
        approvals=json.dumps([approval.to_json().hex()]),
        now=clock.now,
    )
    # ...but even a real one, put in as a row, does not count: the CAS did not write it.
    _refused_loudly(
        cas, lambda: cas.approve_policy("cancer", signed(owners.bob, v2, clock.now, "approve"))
    )


def test_one_policys_older_head_put_back_is_refused(
    cas: Cas, db_url: str, runtime: Runtime, tmp_path: Path, clock: Clock
) -> None:
    """The administrator puts back one policy's whole older state (its rows and its head).

    A running CAS keeps using the head the state lists (it verified it before) and finds the
    missing tag; a CAS started afresh on the database finds the older head itself."""
    snapshot = {
        "policy_state": _row(db_url, "SELECT * FROM policy_state WHERE name = 'cancer'"),
    }
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    cas.update_tag(_tag(runtime, serial, None, "sha256:" + "01" * 32, 1))
    raw_sql(db_url, "DELETE FROM volume_tags")
    raw_sql(db_url, "DELETE FROM instances")
    raw_sql(
        db_url,
        "UPDATE policy_state SET epoch = :epoch, rows = :rows WHERE name = 'cancer'",
        epoch=snapshot["policy_state"]["epoch"],
        rows=snapshot["policy_state"]["rows"],
    )
    _refused_loudly(cas, lambda: cas.provision(runtime.request(cas.nonce().nonce)))
    restarted = make_cas(db_url, tmp_path, clock)
    _refused_loudly(restarted, lambda: restarted.policy("cancer"))


def test_an_untouched_state_still_works_after_every_kind_of_write(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """The control: the same operations without tampering succeed (so the tests above
    fail for the tampering, not for the operation)."""
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    cas.update_tag(_tag(runtime, serial, None, "sha256:" + "01" * 32, 1))
    _update_to_v2(cas, owners, clock)
    assert cas.policy("cancer")[0].version == 2
    assert [v.version for v in cas.history("cancer")[0]] == [1, 2]
    cas.provision(runtime.request(cas.nonce().nonce, instance=1))
    assert "state.tampered" not in _kinds(cas)

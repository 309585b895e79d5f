"""The CAS appends one transparency-log entry per decision, in the decision's transaction,
on SQLite and PostgreSQL; concurrent writers never fork the log."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from securetf.cas import Cas
from securetf.cas._log_entries import identity_entry
from securetf.crypto import Certificate, sha256
from securetf.errors import RollbackError
from securetf.log import leaf_hash
from securetf.policy import Policy, policy_hash
from tests.log.reference import mth

from .support import (
    DATASET,
    MEASUREMENT,
    Clock,
    Owners,
    Runtime,
    make_cas,
    owner_request,
    policy_cas,
    policy_yaml,
    signed,
    tag_update,
)

A = "sha256:" + "0a" * 32
B = "sha256:" + "0b" * 32


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _entries(cas: Cas) -> list[dict[str, Any]]:
    tree = cas.log_tree()
    raw = tree.entries(0, tree.size())
    decoded = [json.loads(e) for e in raw]
    # Canonical JSON: exactly the bytes a re-encoding with sorted keys gives.
    for entry, data in zip(decoded, raw, strict=True):
        assert json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() == data
    return decoded


def test_a_policy_version_is_logged_with_owners_threshold_and_reference_values(
    cas: Cas, owners: Owners, clock: Clock
) -> None:
    v1 = policy_yaml(owners)
    [entry] = _entries(cas)
    policy = Policy.from_yaml(v1)
    assert entry == {
        "type": "policy",
        "v": 1,
        "name": "cancer",
        "version": 1,
        "hash": policy_hash(policy),
        "owners": [
            {"name": "alice", "public_key": owners.alice.verify_key().to_text()},
            {"name": "bob", "public_key": owners.bob.verify_key().to_text()},
            {"name": "carol", "public_key": owners.carol.verify_key().to_text()},
        ],
        "threshold": 2,
        "tee": policy.tee.model_dump(mode="json"),
    }
    # An update is logged once, when it comes into force, not while it is pending.
    v2 = policy_yaml(owners, version=2, predecessor=policy_hash(policy), threshold=1)
    assert cas.apply_policy(v2, [signed(owners.alice, v2, clock.now)], {}).status == "pending"
    assert cas.log_tree().size() == 1
    assert cas.apply_policy(v2, [signed(owners.bob, v2, clock.now)], {}).status == "active"
    entries = _entries(cas)
    assert len(entries) == 2
    assert (entries[1]["version"], entries[1]["threshold"]) == (2, 1)
    assert entries[1]["hash"] == policy_hash(Policy.from_yaml(v2))


def test_a_certificate_and_each_tag_move_are_logged_once(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    response = cas.provision(runtime.request(cas.nonce().nonce))
    cert = Certificate.load(response.certificate_pem.encode())
    assert _entries(cas)[1] == {
        "type": "certificate",
        "v": 1,
        "serial": response.serial,
        "policy": "cancer",
        "policy_version": 1,
        "service": "train",
        "instance": 0,
        "tee": "sim",
        "measurement": MEASUREMENT.hex(),
        "certificate_sha256": sha256(cert.der).hex(),
    }
    cas.update_tag(tag_update(runtime, response.serial, "model", None, A, 1))
    # A refused move (backwards) leaves the log as it was.
    with pytest.raises(RollbackError):
        cas.update_tag(tag_update(runtime, response.serial, "model", A, B, 1))
    detail: dict[str, str | int] = {"tag": B, "version": 1}
    request = owner_request(cas, owners.bob, clock, "register", "dataset", detail)
    cas.register_tag("cancer", "dataset", request)
    # The same state registered again moves nothing: no entry.
    again = owner_request(cas, owners.alice, clock, "register", "dataset", detail)
    cas.register_tag("cancer", "dataset", again)
    base = {"type": "tag", "v": 1, "policy": "cancer", "from": None, "version": 1}
    assert _entries(cas)[2:] == [
        {**base, "volume": "model", "to": A, "by": "instance"},
        {**base, "volume": "dataset", "to": B, "by": "owner"},
    ]


def test_an_entry_is_committed_only_with_its_transaction(cas: Cas) -> None:
    def fail_after_the_entry() -> None:
        with cas._store.transaction() as tx:
            tx.append_log(b'{"type":"never"}')
            raise RuntimeError("the decision failed after its entry was appended")

    with pytest.raises(RuntimeError):
        fail_after_the_entry()
    assert cas.log_tree().size() == 1


def test_two_cas_processes_on_one_database_never_fork_the_log(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners
) -> None:
    # Two Cas objects, each with its own engine and connections: two writers, as two CAS
    # processes on one database are.
    first = policy_cas(db_url, tmp_path, clock, owners)
    second = make_cas(db_url, tmp_path, clock)
    serials: list[int] = []
    lock = threading.Lock()

    def worker(cas: Cas, number: int) -> None:
        runtime = Runtime(home=tmp_path / "home")
        for _ in range(5):
            serial = cas.provision(runtime.request(cas.nonce().nonce, instance=number)).serial
            with lock:
                serials.append(serial)

    threads = [
        threading.Thread(target=worker, args=(cas, i % 2))
        for i, cas in enumerate([first, second, first, second])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(serials) == 20
    tree = first.log_tree()
    raw = tree.entries(0, tree.size())
    assert len(raw) == 21  # the policy and one per certificate, none lost, none twice
    logged = sorted(json.loads(e)["serial"] for e in raw[1:])
    assert logged == sorted(serials)
    # One tree: the stored root is the RFC's root over the entries, seen from both.
    assert tree.root() == second.log_tree().root() == mth([leaf_hash(e) for e in raw])


def test_the_cas_identity_is_logged_once_and_again_at_each_rotation(cas: Cas) -> None:
    def identity(measurement: bytes) -> bytes:
        return identity_entry(
            tee="sim",
            measurement=measurement,
            tls_public_key_der=b"spki",
            audit_public_key="ed25519:audit",
            log_vkey="securetf.cas/0+00000000+AQ==",
        )

    assert cas.log_identity(identity(MEASUREMENT)) == 1
    assert cas.log_identity(identity(MEASUREMENT)) is None  # a restart: nothing new
    assert cas.log_identity(identity(sha256(b"new code"))) == 2  # an upgrade is a rotation
    logged = _entries(cas)[1:]
    assert [(e["type"], e["measurement"]) for e in logged] == [
        ("identity", MEASUREMENT.hex()),
        ("identity", sha256(b"new code").hex()),
    ]
    assert logged[0]["tls_public_key_sha256"] == sha256(b"spki").hex()


def test_a_hashes_policy_publishes_only_hashes(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime
) -> None:
    from securetf.client._logcheck import NotLoggedError, require_entry
    from securetf.protocol.logentry import hashed

    cas = make_cas(db_url, tmp_path, clock)
    yaml = policy_yaml(owners) + b"transparency: hashes\n"
    cas.apply_policy(yaml, [signed(owners.alice, yaml, clock.now, secrets=DATASET)], DATASET)
    response = cas.provision(runtime.request(cas.nonce().nonce))
    cas.update_tag(tag_update(runtime, response.serial, "model", None, A, 1))
    tree = cas.log_tree()
    raw = tree.entries(0, tree.size())
    # Nothing the policy names reaches the public log: not its name, services, volumes,
    # owners' keys or reference values.
    for data in raw:
        for name in (b"cancer", b"train", b"model", b"alice"):
            assert name not in data, data
        assert owners.alice.verify_key().to_text().encode() not in data
    policy, cert, tag = (json.loads(e) for e in raw)
    assert policy == {
        "type": "policy",
        "v": 1,
        "transparency": "hashes",
        "name": hashed("cancer"),
        "version": 1,
        "hash": policy_hash(Policy.from_yaml(yaml)),
    }
    assert (cert["policy"], cert["service"]) == (hashed("cancer"), hashed("train"))
    assert (tag["policy"], tag["volume"]) == (hashed("cancer"), hashed("model"))
    # A client that knows the names checks the entries as well as full ones ...
    expect = {"type": "policy", "name": "cancer", "version": 1, "hash": policy["hash"]}
    require_entry("the policy", 0, raw[0], expect)
    # ... and a lookalike of another name is refused.
    with pytest.raises(NotLoggedError):
        require_entry("the policy", 0, raw[0], {**expect, "name": "other"})


def test_transparency_full_is_the_default_and_keeps_the_policy_hash(owners: Owners) -> None:
    yaml = policy_yaml(owners)
    plain = policy_hash(Policy.from_yaml(yaml))
    assert policy_hash(Policy.from_yaml(yaml + b"transparency: full\n")) == plain
    assert policy_hash(Policy.from_yaml(yaml + b"transparency: hashes\n")) != plain

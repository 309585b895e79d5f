"""Provisioning, volume tags and owner reads through the CAS core, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography import x509

from securetf.attestation import load_or_create_platform_key
from securetf.cas import Cas
from securetf.client.audit import verify_audit_view
from securetf.crypto import SigningKey
from securetf.errors import (
    AttestationError,
    AuthenticationError,
    NotFoundError,
    PolicyError,
    RollbackError,
)
from securetf.policy import Action, GovernanceError, SignedRequest

from .support import (
    AUDIT_KEY,
    DATASET,
    DATASET_KEY,
    SERVE_MEASUREMENT,
    Clock,
    Owners,
    Runtime,
    audit_view,
    make_cas,
    owner_request,
    policy_cas,
    policy_yaml,
    signed,
    tag_update,
)


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _audit_kinds(cas: Cas, owners: Owners, clock: Clock) -> list[str]:
    view = audit_view(cas, owners, clock)
    return [str(e["kind"]) for e in view if "kind" in e]


def _audit(cas: Cas, owners: Owners, clock: Clock) -> list[dict[str, object]]:
    page = cas.audit("cancer", owner_request(cas, owners.carol, clock))
    assert page.head.seq == page.entries[-1]["seq"]  # one page holds this whole log
    return page.entries


def test_provision_releases_config_to_the_attested_runtime(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    response = cas.provision(runtime.request(cas.nonce().nonce, instance=1))
    config = runtime.open(response)
    assert config.command == ["python", "train.py"]
    assert len(config.environment["API_TOKEN"]) == 32  # 16 random bytes, hex
    assert config.volumes["dataset"].key == DATASET_KEY
    assert config.volumes["dataset"].tag is None
    assert b"PRIVATE KEY" in config.files["/run/secrets/tls.key"]
    assert config.output == "operator"  # the policy's default
    cert = x509.load_pem_x509_certificate(response.certificate_pem.encode())
    ca = x509.load_pem_x509_certificate(response.ca_certificate_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "O=cancer,CN=train-1"
    assert "provision.accepted" in _audit_kinds(cas, owners, clock)


@pytest.mark.parametrize(
    "case",
    [
        "replayed-nonce",
        "unknown-nonce",
        "expired-nonce",
        "wrong-measurement",
        "other-service",
        "unknown-service",
        "instance-out-of-range",
        "report-data-of-other-key",
        "report-data-of-other-app",
        "untrusted-platform",
    ],
)
def test_provision_refusals_are_audited(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock, tmp_path: Path, case: str
) -> None:
    nonce = cas.nonce().nonce
    req = runtime.request(nonce)
    expected: type[Exception] = AttestationError
    if case == "replayed-nonce":
        cas.provision(req)
    elif case == "unknown-nonce":
        req = runtime.request(bytes(32))
    elif case == "expired-nonce":
        clock.now += cas.settings.nonce_ttl_seconds + 1
    elif case == "wrong-measurement":
        req = Runtime(home=runtime.home, measurement=b"\x01" * 32).request(nonce)
    elif case == "other-service":
        req = runtime.request(nonce, service="serve")  # train's code asking for serve's secrets
    elif case == "unknown-service":
        req, expected = runtime.request(nonce, service="nope"), NotFoundError
    elif case == "instance-out-of-range":
        req = runtime.request(nonce, instance=2)
    elif case == "report-data-of-other-key":
        other = Runtime(home=runtime.home).request(nonce)  # evidence binds another key
        req = req.model_copy(update={"evidence": other.evidence})
    elif case == "report-data-of-other-app":  # the runtime states serve's app, not train's
        req = runtime.request(nonce, bound_measurement=SERVE_MEASUREMENT)
    elif case == "untrusted-platform":
        foreign = tmp_path / "foreign"
        load_or_create_platform_key(foreign)
        req = Runtime(home=foreign).request(nonce)
    with pytest.raises(expected):
        cas.provision(req)
    kinds = _audit_kinds(cas, owners, clock)
    assert kinds[-1] == "provision.refused"


def test_policy_without_sim_refuses_sim_evidence(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime
) -> None:
    cas = make_cas(db_url, tmp_path, clock)
    yaml = policy_yaml(owners, allow="[tdx, sgx]")
    cas.apply_policy(yaml, [signed(owners.alice, yaml, clock.now, secrets=DATASET)], DATASET)
    with pytest.raises(AttestationError, match="does not allow TEE sim"):
        cas.provision(runtime.request(cas.nonce().nonce))


def test_tags_move_only_forward_by_read_write_instances(
    cas: Cas, runtime: Runtime, tmp_path: Path
) -> None:
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    cas.update_tag(tag_update(runtime, serial, "model", None, "sha256:" + "01" * 32, 1))
    cas.update_tag(
        tag_update(runtime, serial, "model", "sha256:" + "01" * 32, "sha256:" + "02" * 32, 2)
    )
    # The next provisioning sees the new tag (and supersedes the first one of its slot).
    again = cas.provision(runtime.request(cas.nonce().nonce))
    serial = again.serial
    config = runtime.open(again)
    assert (config.volumes["model"].tag, config.volumes["model"].version) == (
        "sha256:" + "02" * 32,
        2,
    )
    with pytest.raises(RollbackError):  # back to an older state
        cas.update_tag(
            tag_update(runtime, serial, "model", "sha256:" + "02" * 32, "sha256:" + "01" * 32, 1)
        )
    with pytest.raises(RollbackError):  # a stale expectation (lost update)
        cas.update_tag(
            tag_update(runtime, serial, "model", "sha256:" + "01" * 32, "sha256:" + "03" * 32, 3)
        )
    with pytest.raises(AuthenticationError, match="read-write"):  # train mounts dataset ro
        cas.update_tag(tag_update(runtime, serial, "dataset", None, "sha256:" + "04" * 32, 1))
    forged = tag_update(
        Runtime(home=runtime.home), serial, "model", "sha256:" + "02" * 32, "sha256:" + "05" * 32, 3
    )
    with pytest.raises(AuthenticationError):  # signed by a key the CAS never certified
        cas.update_tag(forged)
    serve = Runtime(home=runtime.home, measurement=SERVE_MEASUREMENT)
    serve_serial = cas.provision(serve.request(cas.nonce().nonce, service="serve")).serial
    with pytest.raises(AuthenticationError, match="read-write"):  # serve mounts model ro
        cas.update_tag(
            tag_update(
                serve, serve_serial, "model", "sha256:" + "02" * 32, "sha256:" + "06" * 32, 3
            )
        )


def test_a_new_provisioning_of_a_slot_supersedes_the_previous_one(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """Attack: instance 0 is provisioned twice (the operator keeps the first runtime); both
    moved the tag, alternately. Only the latest provisioning of a slot keeps its rights."""
    first = cas.provision(runtime.request(cas.nonce().nonce)).serial
    second_runtime = Runtime(home=runtime.home)
    second = cas.provision(second_runtime.request(cas.nonce().nonce)).serial
    with pytest.raises(AuthenticationError, match="no attested instance"):
        cas.update_tag(tag_update(runtime, first, "model", None, "sha256:" + "01" * 32, 1))
    cas.update_tag(tag_update(second_runtime, second, "model", None, "sha256:" + "01" * 32, 1))
    # Instance 1 is another slot: provisioning it supersedes nothing of instance 0.
    other = cas.provision(runtime.request(cas.nonce().nonce, instance=1)).serial
    cas.update_tag(
        tag_update(
            second_runtime, second, "model", "sha256:" + "01" * 32, "sha256:02" + "0" * 62, 2
        )
    )
    assert other != second
    accepted = [
        e["detail"] for e in _audit(cas, owners, clock) if e.get("kind") == "provision.accepted"
    ]
    assert [d["superseded"] for d in accepted] == [[], [first], []]  # type: ignore[index]
    with cas._store.transaction() as tx:
        assert tx.get_instance(first) is None
        live = tx.get_instance(second)
        assert live is not None
        assert (live.service, live.instance) == ("train", 0)


def test_concurrent_provisionings_of_one_slot_leave_one_live_instance(
    cas: Cas, runtime: Runtime
) -> None:
    serials: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
            with lock:
                serials.append(serial)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(serials)) == 12
    with cas._store.transaction() as tx:
        live = [s for s in serials if tx.get_instance(s) is not None]
    assert len(live) == 1


def test_concurrent_tag_updates_lose_nothing(cas: Cas, runtime: Runtime) -> None:
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    wins: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            # Read the current tag, propose the next; a conflict means another won: retry.
            for _attempt in range(200):
                current = _current(cas)
                version = (current[1] if current else 0) + 1
                try:
                    cas.update_tag(
                        tag_update(
                            runtime,
                            serial,
                            "model",
                            current[0] if current else None,
                            f"sha256:{version:064x}",
                            version,
                        )
                    )
                except RollbackError:
                    continue
                with lock:
                    wins.append(version)
                break

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = _current(cas)
    assert final is not None
    assert sorted(wins) == list(range(1, len(wins) + 1))  # every success is one step, none lost
    assert final[1] == len(wins)


def _current(cas: Cas) -> tuple[str, int] | None:
    with cas._store.transaction() as tx:
        tag = tx.get_tag("cancer", "model")
        return (tag.tag, tag.version) if tag else None


def test_owners_export_secrets_and_read_the_audit(cas: Cas, owners: Owners, clock: Clock) -> None:

    def read(key: SigningKey, target: str = "model-key") -> SignedRequest:
        return owner_request(cas, key, clock, "export", target)

    model_key = cas.export_secret("cancer", "model-key", read(owners.bob))
    assert len(model_key) == 32
    with pytest.raises(PolicyError, match="not exported"):
        cas.export_secret("cancer", "dataset-key", read(owners.bob, "dataset-key"))
    with pytest.raises(GovernanceError, match="not an owner"):
        cas.export_secret("cancer", "model-key", read(SigningKey.generate()))
    replay = read(owners.bob)
    cas.export_secret("cancer", "model-key", replay)
    with pytest.raises(GovernanceError, match="already used"):
        cas.export_secret("cancer", "model-key", replay)
    view = audit_view(cas, owners, clock)
    verify_audit_view(view, AUDIT_KEY.verify_key(), policy="cancer")
    exported = [e for e in view if e.get("kind") == "secret.exported"]
    assert [e["detail"] for e in exported] == [{"secret": "model-key", "owner": "bob"}] * 2


@pytest.mark.parametrize("made_for", ["audit", "export-of-another-secret"])
def test_an_owner_signature_works_only_for_the_operation_it_was_made_for(
    cas: Cas, owners: Owners, clock: Clock, made_for: str
) -> None:
    """Attack: a signature an owner made to read the audit log (or to export another
    secret) is sent to export the model key. It must not release anything."""
    action: Action
    action, target = ("audit", "") if made_for == "audit" else ("export", "api-token")
    other = owner_request(cas, owners.bob, clock, action, target)
    with pytest.raises(GovernanceError, match="request"):
        cas.export_secret("cancer", "model-key", other)
    assert "secret.exported" not in _audit_kinds(cas, owners, clock)


def test_concurrent_provisioning_all_succeed_with_distinct_serials(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    serials: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(4):
                response = cas.provision(runtime.request(cas.nonce().nonce))
                runtime.open(response)
                with lock:
                    serials.append(response.serial)
        except BaseException as exc:  # reported below
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(set(serials)) == 24
    view = audit_view(cas, owners, clock)
    verify_audit_view(view, AUDIT_KEY.verify_key(), policy="cancer")
    assert sum(1 for e in view if e.get("kind") == "provision.accepted") == 24


def _update(cas: Cas, owners: Owners, clock: Clock, **changes: object) -> None:
    current, _ = cas.policy("cancer")
    v = policy_yaml(owners, version=current.version + 1, predecessor=current.hash, **changes)  # type: ignore[arg-type]
    done = cas.apply_policy(
        v, [signed(owners.alice, v, clock.now), signed(owners.bob, v, clock.now)], {}
    )
    assert done.status == "active"


def test_a_policy_update_revokes_instances_it_no_longer_allows(
    cas: Cas, runtime: Runtime, owners: Owners, clock: Clock
) -> None:
    """Attack: an instance provisioned under version 1 keeps moving the model's tag after
    version 2 stopped allowing its measurement."""
    serial = cas.provision(runtime.request(cas.nonce().nonce)).serial
    assert cas.instance_status("cancer", serial).live
    # An update that still allows it changes nothing for it.
    _update(cas, owners, clock, extra_env='\n      V: "2"')
    status = cas.instance_status("cancer", serial)
    assert (status.live, status.service, status.instance) == (True, "train", 0)
    _update(cas, owners, clock, measurement=b"\x07" * 32)
    status = cas.instance_status("cancer", serial)
    assert not status.live
    assert "measurement" in status.reason
    with pytest.raises(AuthenticationError, match="revoked by a policy update"):
        cas.update_tag(tag_update(runtime, serial, "model", None, "sha256:" + "01" * 32, 1))


def test_instance_status_follows_supersession_and_expiry(
    cas: Cas, runtime: Runtime, clock: Clock
) -> None:
    first = cas.provision(runtime.request(cas.nonce().nonce)).serial
    second = cas.provision(runtime.request(cas.nonce().nonce)).serial
    assert not cas.instance_status("cancer", first).live
    assert cas.instance_status("cancer", second).live
    assert not cas.instance_status("other-policy", second).live
    assert not cas.instance_status("cancer", 12345).live
    clock.now += cas.settings.instance_cert_seconds + 1
    expired = cas.instance_status("cancer", second)
    assert (expired.live, expired.reason) == (False, "its certificate expired")

"""Shared pieces of the CAS tests: owners, policies, a CAS over a real store, a runtime."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securetf.attestation import SimProducer, load_or_create_platform_key
from securetf.cas import Cas, CasSettings
from securetf.cas.master_key import MasterKey
from securetf.cas.store import open_store
from securetf.crypto import SigningKey, sha256
from securetf.crypto.sealed_box import BoxKey
from securetf.crypto.x509ca import EcKey
from securetf.policy import (
    Action,
    Policy,
    SignedRequest,
    import_digest,
    policy_hash,
    sign_request,
)
from securetf.protocol import (
    CONFIG_INFO,
    ProvisionRequest,
    ProvisionResponse,
    ServiceConfig,
    TagUpdate,
    provision_report_data,
    tag_update_message,
)

MEASUREMENT = sha256(b"the train app")
SERVE_MEASUREMENT = sha256(b"the serve app")
DATASET_KEY = bytes(range(32))
DATASET = {"dataset-key": DATASET_KEY}  # the imported secrets of version 1


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Owners:
    alice: SigningKey = field(default_factory=SigningKey.generate)
    bob: SigningKey = field(default_factory=SigningKey.generate)
    carol: SigningKey = field(default_factory=SigningKey.generate)


def policy_yaml(
    owners: Owners,
    *,
    version: int = 1,
    predecessor: str | None = None,
    allow: str = "[sim]",
    measurement: bytes = MEASUREMENT,
    extra_env: str = "",
    threshold: int = 2,
) -> bytes:
    pred = f'"{predecessor}"' if predecessor else "null"
    return f"""
name: cancer
version: {version}
predecessor: {pred}
governance:
  owners:
    - {{name: alice, public_key: "{owners.alice.verify_key().to_text()}"}}
    - {{name: bob, public_key: "{owners.bob.verify_key().to_text()}"}}
    - {{name: carol, public_key: "{owners.carol.verify_key().to_text()}"}}
  update_threshold: {threshold}
tee:
  allow: {allow}
secrets:
  dataset-key: {{kind: volume-key, source: imported}}
  model-key: {{kind: volume-key, source: generated, export_to_owners: true}}
  api-token: {{kind: random, bytes: 16, encoding: hex}}
  worker-cert: {{kind: x509, common_name: train, usage: [server, client]}}
volumes:
  dataset: {{key: dataset-key}}
  model: {{key: model-key}}
services:
  train:
    measurement: "sha256:{measurement.hex()}"
    command: [python, train.py]
    instances: 2
    mounts:
      - {{volume: dataset, path: /data, mode: ro}}
      - {{volume: model, path: /model, mode: rw}}
    environment:
      API_TOKEN: "{{{{ secrets.api-token }}}}"{extra_env}
    files:
      /run/secrets/tls.key: "{{{{ secrets.worker-cert.key }}}}"
  serve:
    measurement: "sha256:{SERVE_MEASUREMENT.hex()}"
    command: [securetf, serve]
    mounts:
      - {{volume: model, path: /model, mode: ro}}
""".encode()


def signed(
    key: SigningKey,
    yaml: bytes,
    now: float,
    action: str = "",
    *,
    secrets: Mapping[str, bytes] | None = None,
) -> SignedRequest:
    """An owner's signature of ``yaml`` and of the imported ``secrets`` uploaded with it."""
    policy = Policy.from_yaml(yaml)
    act = action or ("create" if policy.version == 1 else "update")
    return sign_request(
        key,
        action=act,  # type: ignore[arg-type]
        policy=policy.name,
        version=policy.version,
        policy_hash=policy_hash(policy),
        issued_at=int(now),
        imports={name: import_digest(value) for name, value in (secrets or {}).items()},
    )


AUDIT_KEY = SigningKey.generate()


def make_cas(db_url: str, tmp_path: Path, clock: Clock, settings: CasSettings | None = None) -> Cas:
    """A CAS over a real store; its audit key is :data:`AUDIT_KEY`."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    platform = load_or_create_platform_key(home)
    data = tmp_path / "cas-data"
    data.mkdir(exist_ok=True)
    store = open_store(db_url, master_key=MasterKey.load_or_create(data), audit_key=AUDIT_KEY)
    return Cas(store, clock=clock, sim_trust=[platform.verify_key()], settings=settings)


def policy_cas(
    db_url: str, tmp_path: Path, clock: Clock, owners: Owners, settings: CasSettings | None = None
) -> Cas:
    """A CAS (see :func:`make_cas`) holding version 1 of the policy ``cancer``."""
    cas = make_cas(db_url, tmp_path, clock, settings)
    yaml = policy_yaml(owners)
    cas.apply_policy(yaml, [signed(owners.alice, yaml, clock.now, secrets=DATASET)], DATASET)
    return cas


def owner_request(
    cas: Cas,
    key: SigningKey,
    clock: Clock,
    action: Action = "audit",
    target: str = "",
    detail: Mapping[str, str | int] | None = None,
) -> SignedRequest:
    """An owner's signed request for ``action`` on ``target`` under ``cancer`` in force."""
    stored, _ = cas.policy("cancer")
    return sign_request(
        key,
        action=action,
        policy="cancer",
        version=stored.version,
        policy_hash=stored.hash,
        issued_at=int(clock.now),
        target=target,
        detail=detail,
    )


def audit_view(cas: Cas, owners: Owners, clock: Clock) -> list[dict[str, Any]]:
    """The audit chain as an owner of ``cancer`` reads it."""
    return cas.audit("cancer", owner_request(cas, owners.carol, clock, "audit")).entries


@dataclass
class Runtime:
    """What `securetf run` does to get provisioned, written out for tests."""

    home: Path
    measurement: bytes = MEASUREMENT
    tls: EcKey = field(default_factory=EcKey.generate)
    box: BoxKey = field(default_factory=BoxKey)
    clock: Callable[[], float] = time.time  # the time its evidence states

    def request(
        self,
        nonce: bytes,
        *,
        service: str = "train",
        instance: int = 0,
        report_nonce: bytes | None = None,
        bound_measurement: bytes | None = None,
    ) -> ProvisionRequest:
        data = provision_report_data(
            report_nonce or nonce,
            self.tls.public_der(),
            self.box.public(),
            bound_measurement or self.measurement,
        )
        evidence = SimProducer(self.measurement, home=self.home, clock=self.clock).evidence(data)
        return ProvisionRequest(
            policy="cancer",
            service=service,
            instance=instance,
            tee="sim",
            evidence=evidence.data,
            nonce=nonce,
            tls_public_key=self.tls.public_der(),
            box_public_key=self.box.public(),
        )

    def open(self, response: ProvisionResponse) -> ServiceConfig:
        return ServiceConfig.model_validate_json(
            self.box.open(response.sealed_config, info=CONFIG_INFO)
        )


def tag_update(
    runtime: Runtime, serial: int, volume: str, expected: str | None, tag: str, version: int
) -> TagUpdate:
    """A tag move of the test policy's ``volume``, signed with the runtime's TLS key."""
    message = tag_update_message(
        policy="cancer", volume=volume, serial=serial, expected=expected, tag=tag, version=version
    )
    return TagUpdate(
        policy="cancer",
        volume=volume,
        serial=serial,
        expected=expected,
        tag=tag,
        version=version,
        signature=runtime.tls.sign(message),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

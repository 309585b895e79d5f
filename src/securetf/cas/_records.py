"""The records the CAS keeps, as the core sees them (the store maps them to tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PolicyVersion:
    """One version of a policy, as applied. ``yaml`` is the exact bytes the owners uploaded."""

    name: str
    version: int
    hash: str
    yaml: bytes
    approvals: tuple[bytes, ...]  # SignedRequest.to_json() of every counted signature
    created_at: float


@dataclass(frozen=True)
class PendingUpdate:
    """A proposed version that valid signatures support, short of the threshold."""

    name: str
    version: int
    hash: str
    yaml: bytes
    approvals: tuple[bytes, ...]
    secrets: tuple[tuple[str, bytes], ...]  # imported secrets uploaded with the proposal
    created_at: float


@dataclass(frozen=True)
class PolicyCa:
    """A policy's certificate authority. ``key_pem`` is the plaintext PKCS#8 PEM."""

    policy: str
    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class Instance:
    """An attested instance: the certificate the CAS issued to its runtime key."""

    serial: int
    policy: str
    policy_version: int
    service: str
    instance: int
    public_key_der: bytes  # SubjectPublicKeyInfo of the runtime's signing key
    expires_at: float
    created_at: float
    tee: str  # what its evidence proved, checked again against every later version
    measurement: bytes


@dataclass(frozen=True)
class VolumeTag:
    policy: str
    volume: str
    tag: str
    version: int  # the volume's manifest version (monotonic)
    updated_at: float


@dataclass(frozen=True)
class AuditEntry:
    """One link of the hash chain.

    ``digest = SHA-256(canonical JSON of {seq, time, kind, policy, detail})``;
    ``chain = SHA-256(prev_chain || digest)`` (prev_chain of the first entry: 32 zero bytes);
    ``signature`` = the CAS audit key's Ed25519 signature over ``chain``.
    """

    seq: int
    time: float
    kind: str
    policy: str | None
    detail: dict[str, Any]
    digest: bytes
    chain: bytes
    signature: bytes

"""Applying, approving and reading policies (inside one store transaction each)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from securetf.cas._ca import make_ca, rotate_if_asked
from securetf.cas._log_entries import policy_entry, policy_ref
from securetf.cas._records import PendingUpdate, PolicyVersion
from securetf.cas._secret_versions import keep_previous, previous_name
from securetf.cas._store_api import Tx
from securetf.cas.settings import CasSettings
from securetf.crypto import random_bytes
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import (
    Policy,
    RandomSecret,
    SignedRequest,
    ThresholdNotMet,
    VerifiedChange,
    VolumeKeySecret,
    check_create,
    check_update,
    import_digest,
    policy_hash,
)
from securetf.protocol import ApplyResult

VOLUME_KEY_BYTES = 32
#: Parsed policy versions kept in memory.
POLICY_CACHE_SIZE = 256


@functools.lru_cache(maxsize=POLICY_CACHE_SIZE)
def parse(yaml: bytes) -> Policy:
    """A stored policy's YAML, parsed once: stored versions never change, and parsing YAML
    in Python costs milliseconds that every provisioning would otherwise pay."""
    return Policy.from_yaml(yaml)


def load(tx: Tx, name: str) -> tuple[PolicyVersion, Policy]:
    stored = tx.current_policy(name)
    if stored is None:
        raise NotFoundError(f"no policy {name!r} at this CAS; apply it first")
    return stored, parse(stored.yaml)


def import_digests(imported: Mapping[str, bytes]) -> dict[str, str]:
    """What the owners' signatures must commit to for these uploaded values."""
    return {name: import_digest(value) for name, value in imported.items()}


def _check_imports(policy: Policy, imported: Mapping[str, bytes], tx: Tx) -> None:
    for name, value in imported.items():
        secret = policy.secrets.get(name)
        if not isinstance(secret, VolumeKeySecret) or secret.source != "imported":
            raise PolicyError(
                f"secret {name!r} was uploaded, but the policy does not define it as "
                "{kind: volume-key, source: imported}"
            )
        if len(value) != VOLUME_KEY_BYTES:
            raise PolicyError(f"secret {name!r} must be a {VOLUME_KEY_BYTES}-byte volume key")
        existing = tx.get_secret(policy.name, name)
        if existing is not None and existing != value and not secret.previous_readable_seconds:
            raise PolicyError(
                f"secret {name!r} is already stored with another value; volumes sealed "
                "with it would become unreadable, so it cannot be replaced (unless the "
                "policy gives it previous_readable_seconds: how long owners may still read "
                "the previous value)"
            )
    for name, secret in policy.secrets.items():
        imported_key = isinstance(secret, VolumeKeySecret) and secret.source == "imported"
        if imported_key and name not in imported and tx.get_secret(policy.name, name) is None:
            raise PolicyError(
                f"secret {name!r} is imported: upload it with --secret {name}=KEYFILE"
            )


def _materialize(tx: Tx, policy: Policy, imported: Mapping[str, bytes], now: float) -> None:
    """Store imported secrets and generate the generated ones that do not exist yet. A
    replaced imported value is kept as the previous version (secret_versions)."""
    for name, value in imported.items():
        existing = tx.get_secret(policy.name, name)
        if existing is not None and existing != value:
            spec = policy.secrets[name]
            keep = spec.previous_readable_seconds if isinstance(spec, VolumeKeySecret) else 0
            until = now + keep
            tx.put_secret(policy.name, previous_name(name), keep_previous(existing, until))
            tx.append_audit(
                "secret.replaced", policy.name, {"secret": name, "previous_until": until}, now
            )
        tx.put_secret(policy.name, name, value)
    for name, secret in policy.secrets.items():
        if tx.get_secret(policy.name, name) is not None:
            continue
        if isinstance(secret, VolumeKeySecret) and secret.source == "generated":
            tx.put_secret(policy.name, name, random_bytes(VOLUME_KEY_BYTES))
        elif isinstance(secret, RandomSecret):
            tx.put_secret(policy.name, name, random_bytes(secret.bytes))


def _activate(
    tx: Tx,
    change: VerifiedChange,
    yaml: bytes,
    imported: Mapping[str, bytes],
    settings: CasSettings,
    now: float,
) -> ApplyResult:
    policy = change.policy
    previous = load(tx, policy.name)[1] if policy.version > 1 else None
    tx.insert_policy(
        PolicyVersion(
            policy.name,
            policy.version,
            change.policy_hash,
            yaml,
            tuple(a.signed.to_json() for a in change.approvals),
            now,
        )
    )
    tx.append_log(policy_entry(policy, change.policy_hash), policy_ref(policy.name, policy.version))
    tx.record_request_ids(change.request_ids, now)
    tx.delete_pending(policy.name)
    _materialize(tx, policy, imported, now)
    ca = tx.get_ca(policy.name)
    if ca is None:
        tx.put_ca(make_ca(policy, settings, now))
    elif previous is not None:
        rotated = rotate_if_asked(ca, previous, policy, settings, now)
        if rotated is not None:
            tx.put_ca(rotated)
            tx.append_audit(
                "ca.rotated",
                policy.name,
                {"generation": policy.ca.generation, "overlap_seconds": policy.ca.overlap_seconds},
                now,
            )
    count = len(change.approvals)
    tx.append_audit(
        "policy.created" if policy.version == 1 else "policy.updated",
        policy.name,
        {
            "version": policy.version,
            "hash": change.policy_hash,
            "approved_by": sorted(a.owner for a in change.approvals),
            "imported_secrets": sorted(imported),
        },
        now,
    )
    return ApplyResult(
        name=policy.name,
        version=policy.version,
        hash=change.policy_hash,
        status="active",
        signatures=count,
        needed=count,
    )


def apply(
    tx: Tx,
    yaml: bytes,
    signatures: Sequence[SignedRequest],
    imported: Mapping[str, bytes],
    *,
    settings: CasSettings,
    now: float,
) -> ApplyResult:
    """Create a policy, update it, or record a pending update short of its threshold."""
    policy = Policy.from_yaml(yaml)
    seen = tx.seen_request_ids(s.unverified_request().request_id for s in signatures)
    current = tx.current_policy(policy.name)
    if current is None:
        change = check_create(
            policy, signatures, now=now, seen_request_ids=seen, imports=import_digests(imported)
        )
        _check_imports(policy, imported, tx)
        return _activate(tx, change, yaml, imported, settings, now)
    pending = tx.pending_update(policy.name)
    return _update(tx, current, policy, yaml, signatures, pending, imported, settings, now, seen)


def approve(
    tx: Tx, name: str, signed: SignedRequest, *, settings: CasSettings, now: float
) -> ApplyResult:
    """Add one owner's approval to the pending update of ``name``."""
    current = tx.current_policy(name)
    pending = tx.pending_update(name)
    if current is None or pending is None:
        raise NotFoundError(f"policy {name!r} has no pending update to approve")
    seen = tx.seen_request_ids([signed.unverified_request().request_id])
    proposed = parse(pending.yaml)
    return _update(
        tx,
        current,
        proposed,
        pending.yaml,
        [signed],
        pending,
        dict(pending.secrets),
        settings,
        now,
        seen,
    )


def _update(
    tx: Tx,
    current: PolicyVersion,
    proposed: Policy,
    yaml: bytes,
    signatures: Sequence[SignedRequest],
    pending: PendingUpdate | None,
    imported: Mapping[str, bytes],
    settings: CasSettings,
    now: float,
    seen: set[str],
) -> ApplyResult:
    imports = import_digests(imported)
    # Approvals of the pending proposal count only for the very same proposal: the same
    # YAML and the same imported values (another value is another proposal).
    same = (
        pending is not None
        and pending.yaml == yaml
        and import_digests(dict(pending.secrets)) == imports
    )
    kept = [SignedRequest.from_json(a) for a in pending.approvals] if same and pending else []
    _check_imports(proposed, imported, tx)
    try:
        change = check_update(
            parse(current.yaml),
            current.hash,
            proposed,
            signatures,
            now=now,
            seen_request_ids=seen,
            imports=imports,
            pending=kept,
        )
    except ThresholdNotMet as short:
        digest = policy_hash(proposed)
        tx.record_request_ids(short.request_ids, now)
        tx.put_pending(
            PendingUpdate(
                proposed.name,
                proposed.version,
                digest,
                yaml,
                tuple(a.signed.to_json() for a in short.approvals),
                tuple(sorted(imported.items())),
                now,
            )
        )
        tx.append_audit(
            "policy.pending",
            proposed.name,
            {
                "version": proposed.version,
                "hash": digest,
                "approved_by": sorted(a.owner for a in short.approvals),
                "needed": short.needed,
            },
            now,
        )
        return ApplyResult(
            name=proposed.name,
            version=proposed.version,
            hash=digest,
            status="pending",
            signatures=short.count,
            needed=short.needed,
        )
    return _activate(tx, change, yaml, imported, settings, now)

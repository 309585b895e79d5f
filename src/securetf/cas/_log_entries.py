"""The entries the CAS appends to its transparency log, one per decision.

Each entry is canonical JSON (sorted keys, no whitespace, UTF-8) of an object with a
``type`` and the format version ``v`` (1), appended in the database transaction of the
decision it records. docs/log.md describes them for verifiers.

=================== ==========================================================================
``type``            fields (besides ``type`` and ``v``)
=================== ==========================================================================
``policy``          ``name``, ``version``, ``hash`` (``sha256:...``), ``owners``
                    ([{``name``, ``public_key``}]), ``threshold``, ``tee`` (the policy's
                    ``tee`` section as it states it: allowed TEEs and reference values)
``certificate``     ``serial``, ``policy``, ``policy_version``, ``service``, ``instance``,
                    ``tee``, ``measurement`` (hex), ``certificate_sha256`` (hex of the DER)
``tag``             ``policy``, ``volume``, ``from`` (tag or null), ``to``, ``version``,
                    ``by`` (``"instance"`` when a run moved it, ``"owner"`` when registered)
(a ``transparency: hashes`` policy: ``transparency: "hashes"``, names as ``sha256:<hex>``,
its policy entries only ``name``, ``version``, ``hash``; securetf.protocol.logentry)
``identity``        ``tee``, ``measurement`` (hex: the securetf package's on sim),
                    ``tls_public_key_sha256`` (hex, of the SPKI DER), ``audit_public_key``,
                    ``log_vkey``, and ``recovery`` (``sha256:...`` of the recovery set that
                    holds shares of the master key; absent without one): at a CAS start
                    whose identity differs from the last logged
=================== ==========================================================================
"""

from __future__ import annotations

from typing import Literal

from securetf.crypto import sha256
from securetf.policy import Policy, canonical_json
from securetf.protocol.logentry import HASHES, published

__all__ = [
    "ENTRY_VERSION",
    "IDENTITY_REF",
    "certificate_entry",
    "certificate_ref",
    "identity_entry",
    "policy_entry",
    "policy_ref",
    "tag_entry",
]

ENTRY_VERSION = 1
#: The ``log_refs`` row of the CAS's last identity entry.
IDENTITY_REF = "identity"


def policy_ref(name: str, version: int) -> str:
    """The ``log_refs`` row of a policy version's entry."""
    return f"policy/{name}/{version}"


def certificate_ref(policy: str, serial: int) -> str:
    """The ``log_refs`` row of a certificate's entry."""
    return f"certificate/{policy}/{serial}"


def _with(transparency: str, entry: dict[str, object]) -> bytes:
    """The entry as a ``transparency`` policy publishes it (securetf.protocol.logentry)."""
    if transparency != HASHES:
        return canonical_json(entry)
    kind = str(entry["type"])
    out = {k: published(kind, k, v, transparency) for k, v in entry.items()}
    return canonical_json({**out, "transparency": HASHES})


def policy_entry(policy: Policy, policy_hash: str) -> bytes:
    """The version of ``policy`` that is now in force."""
    governance = policy.governance
    if policy.transparency == HASHES:
        return _with(
            HASHES,
            {
                "type": "policy",
                "v": ENTRY_VERSION,
                "name": policy.name,
                "version": policy.version,
                "hash": policy_hash,
            },
        )
    return canonical_json(
        {
            "type": "policy",
            "v": ENTRY_VERSION,
            "name": policy.name,
            "version": policy.version,
            "hash": policy_hash,
            "owners": [{"name": o.name, "public_key": o.public_key} for o in governance.owners],
            "threshold": governance.update_threshold,
            "tee": policy.tee.model_dump(mode="json"),
        }
    )


def certificate_entry(
    *,
    serial: int,
    policy: str,
    policy_version: int,
    service: str,
    instance: int,
    tee: str,
    measurement: bytes,
    certificate_der: bytes,
    transparency: str = "full",
) -> bytes:
    """A certificate issued to an attested instance (as Certificate Transparency logs)."""
    return _with(
        transparency,
        {
            "type": "certificate",
            "v": ENTRY_VERSION,
            "serial": serial,
            "policy": policy,
            "policy_version": policy_version,
            "service": service,
            "instance": instance,
            "tee": tee,
            "measurement": measurement.hex(),
            "certificate_sha256": sha256(certificate_der).hex(),
        },
    )


def tag_entry(
    *,
    policy: str,
    volume: str,
    previous: str | None,
    tag: str,
    version: int,
    by: Literal["instance", "owner"],
    transparency: str = "full",
) -> bytes:
    """A volume's tag moved (by a run's commit) or registered (by an owner)."""
    return _with(
        transparency,
        {
            "type": "tag",
            "v": ENTRY_VERSION,
            "policy": policy,
            "volume": volume,
            "from": previous,
            "to": tag,
            "version": version,
            "by": by,
        },
    )


def identity_entry(
    *,
    tee: str,
    measurement: bytes,
    tls_public_key_der: bytes,
    audit_public_key: str,
    log_vkey: str,
    recovery: str | None = None,
) -> bytes:
    """The CAS's identity (a first start, or a rotation: new code, a new key, other
    holders of recovery shares)."""
    entry = {
        "type": "identity",
        "v": ENTRY_VERSION,
        "tee": tee,
        "measurement": measurement.hex(),
        "tls_public_key_sha256": sha256(tls_public_key_der).hex(),
        "audit_public_key": audit_public_key,
        "log_vkey": log_vkey,
    }
    if recovery is not None:
        entry["recovery"] = recovery
    return canonical_json(entry)

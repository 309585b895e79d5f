"""Owners register the state of a volume: the tag a ``rollback: protected`` volume must have.

Only runtimes that mount a volume read-write move its tag as they commit; a volume that
an owner seals or updates (``securetf volume seal``, ``volume put``) reaches the CAS only
through this signed, audited request. Steps (each failure raises and changes nothing; the
core audits the refusal):

1. The request is an owner's, fresh and unreplayed, for ``register`` on this volume under
   the version in force (``_owner.authorize``).
2. Its detail is exactly ``{"tag": "sha256:<hex>", "version": N}``.
3. The policy defines the volume.
4. A registration never moves a volume backwards: a version below the recorded one, or
   the same version with another tag, is refused; the same state again changes nothing.
5. The tag moves by compare-and-swap from the state read in step 4, and the move is
   audited (``tag.registered``).
"""

from __future__ import annotations

import re

from securetf.cas import _owner
from securetf.cas._log_entries import tag_entry
from securetf.cas._policies import load
from securetf.cas._records import VolumeTag
from securetf.cas._store_api import TagConflict, Tx
from securetf.errors import NotFoundError, PolicyError, RollbackError
from securetf.policy import SignedRequest
from securetf.protocol.messages import RegisteredTag

#: A volume's tag: SHA-256 of its manifest file (docs/volume-format.md).
TAG_PATTERN = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
#: Largest version the CAS records (its tag table holds a signed 64-bit integer).
MAX_VERSION = 2**63 - 1


def register(
    tx: Tx, policy_name: str, volume: str, signed: SignedRequest, *, now: float
) -> RegisteredTag:
    # 1. An owner's fresh request for exactly this operation.
    approval = _owner.authorize(tx, policy_name, signed, action="register", target=volume, now=now)
    # 2. The state it registers.
    tag, version = _state(approval.request.detail)
    # 3. A volume of the policy in force.
    _, policy = load(tx, policy_name)
    if volume not in policy.volumes:
        raise NotFoundError(
            f"policy {policy_name!r} has no volume {volume!r} "
            f"(volumes: {', '.join(sorted(policy.volumes)) or 'none'})"
        )
    # 4. Never backwards; the same state again is no move.
    current = tx.get_tag(policy_name, volume)
    previous = current.tag if current else None
    if current is None or (current.tag, current.version) != (tag, version):
        if current is not None and version <= current.version:
            raise RollbackError(
                f"volume {volume!r} is recorded at version {current.version}; registering "
                f"version {version} would move it backwards. Register a newer state of it"
            )
        # 5. Compare-and-swap from the state checked above.
        try:
            tx.swap_tag(previous, VolumeTag(policy_name, volume, tag, version, now))
            tx.append_log(
                tag_entry(
                    policy=policy_name,
                    volume=volume,
                    previous=previous,
                    tag=tag,
                    version=version,
                    by="owner",
                    transparency=policy.transparency,
                )
            )
        except TagConflict:
            raise RollbackError(
                f"volume {volume!r} changed while registering (a run committed); "
                "check its state and register again"
            ) from None
    detail = {
        "volume": volume,
        "from": previous,
        "to": tag,
        "version": version,
        "owner": approval.owner,
    }
    tx.append_audit("tag.registered", policy_name, detail, now)
    return RegisteredTag(volume=volume, previous=previous, tag=tag, version=version)


def _state(detail: dict[str, str | int]) -> tuple[str, int]:
    tag, version = detail.get("tag"), detail.get("version")
    if set(detail) != {"tag", "version"} or not isinstance(tag, str) or type(version) is not int:
        raise PolicyError(
            'a register request\'s detail is exactly {"tag": "sha256:...", "version": N}'
        )
    if not TAG_PATTERN.match(tag):
        raise PolicyError(f"{tag[:80]!r} is not a volume tag (sha256: and 64 hex digits)")
    if not 1 <= version <= MAX_VERSION:
        raise PolicyError(f"a volume's version is between 1 and {MAX_VERSION}, not {version}")
    return tag, version


__all__ = ["MAX_VERSION", "TAG_PATTERN", "register"]

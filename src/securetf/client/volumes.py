"""Owners register the state of a sealed volume at the CAS (``securetf volume register``).

A ``rollback: protected`` volume opens under ``securetf run`` only in the state the CAS
recorded. Runtimes record what they commit; an owner records what it sealed or changed
itself: the state is read from the volume, every byte verified with its key, or given.
"""

from __future__ import annotations

from pathlib import Path

from securetf.client.cas import CasClient
from securetf.crypto import SigningKey
from securetf.errors import NotFoundError, UsageError
from securetf.policy import Policy, VolumeKeySecret
from securetf.protocol.messages import RegisteredTag
from securetf.volume import Volume, VolumeKey


def register_volume(
    client: CasClient,
    owner: SigningKey,
    *,
    policy: str,
    volume: str,
    path: Path | None = None,
    key_file: Path | None = None,
    tag: str | None = None,
    version: int | None = None,
) -> RegisteredTag:
    """Register the state of ``volume`` of ``policy``: that of the sealed volume at ``path``
    (opened with ``key_file``, or with its key from the CAS if the policy exports it to
    owners), or exactly ``tag`` at ``version``."""
    if tag is not None or version is not None:
        if tag is None or version is None or path is not None or key_file is not None:
            raise UsageError(
                "give either the sealed volume (VOL, and --key-file unless the policy exports "
                "its key to owners) or both --tag and --version"
            )
        return client.register_tag(policy, volume, tag=tag, version=version, key=owner)
    if path is None:
        raise UsageError("name the sealed volume to register (VOL), or give --tag and --version")
    key = (
        VolumeKey.from_file(key_file) if key_file else _exported_key(client, owner, policy, volume)
    )
    with Volume.open(path, key) as vol:
        state = vol.verify()  # an owner vouches for every byte of the state it registers
    return client.register_tag(policy, volume, tag=state.tag, version=state.version, key=owner)


def _exported_key(client: CasClient, owner: SigningKey, policy: str, volume: str) -> VolumeKey:
    """The volume's key from the CAS, if the policy in force exports it to owners."""
    yaml = client.show_policy(policy, owner).policy_yaml
    if yaml is None:  # pragma: no cover - the CAS answers an owner's show with the YAML
        raise UsageError(f"the CAS did not show policy {policy!r} to its owner")
    spec = Policy.from_yaml(yaml)
    if volume not in spec.volumes:
        raise NotFoundError(
            f"policy {policy!r} has no volume {volume!r} "
            f"(volumes: {', '.join(sorted(spec.volumes)) or 'none'})"
        )
    secret = spec.volumes[volume].key
    kind = spec.secrets.get(secret)
    if not isinstance(kind, VolumeKeySecret) or not kind.export_to_owners:
        raise UsageError(
            f"policy {policy!r} does not export the key of volume {volume!r} ({secret}) to "
            "owners: give it with --key-file"
        )
    return VolumeKey(client.export_secret(policy, secret, owner))


__all__ = ["register_volume"]

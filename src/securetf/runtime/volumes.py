"""Opening the service's volumes as the CAS says, and mounting them through the shield."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from securetf.errors import IntegrityError, RollbackError, UsageError
from securetf.protocol import VolumeGrant
from securetf.shield.fs import Mount, mount
from securetf.volume import Volume, VolumeKey


@dataclass
class MountedVolume:
    name: str
    grant: VolumeGrant
    volume: Volume
    mount: Mount
    #: The storage this run created (the volume did not exist before it), else None.
    created: Path | None = None


def register_command(storage: Path, *, policy: str, volume: str, cas: str) -> str:
    """The command an owner runs to record the state of the volume at ``storage``."""
    return (
        f"securetf volume register {storage} --policy {policy} --volume {volume} --cas {cas} "
        "--key OWNER_KEY [--key-file VOLUME_KEY]"
    )


def open_volume(name: str, grant: VolumeGrant, storage: Path, *, policy: str, cas: str) -> Volume:
    """Open ``storage`` with the CAS's key; refuse any state other than the CAS's.

    A ``rollback: protected`` volume opens only in the state the CAS recorded; with none
    recorded, only a read-write volume that does not exist yet starts (created empty: its
    first commit becomes version 1 and its tag). ``policy`` and ``cas`` name the run, for
    the command that registers a state.
    """
    key = VolumeKey(grant.key)
    writable = grant.mode == "rw"
    register = register_command(storage, policy=policy, volume=name, cas=cas)
    if not storage.exists():
        if not writable or grant.tag is not None:
            what = "has a recorded state" if grant.tag else "is mounted read-only"
            raise UsageError(
                f"volume {name!r} is missing at {storage}, but it {what}: give its storage "
                f"with --volume {name}=PATH"
            )
        return Volume.create(storage, key)
    if grant.tag is None and grant.rollback == "protected":
        # Whatever lies there, the CAS never recorded it: it may be an older copy.
        raise RollbackError(
            f"volume {name!r} is rollback-protected and the CAS has no recorded state of it, "
            f"so the copy at {storage} may be an old one. If it is the state an owner sealed, "
            f"the owner registers it first: {register}"
        )
    try:
        vol = Volume.open(storage, key, writable=writable, expect_tag=grant.tag)
    except RollbackError as exc:
        raise RollbackError(
            f"{exc}. Run with the latest copy of the volume (the one the last run committed, "
            f"or its owner sealed). If an owner changed it on purpose, the owner registers "
            f"its state: {register}"
        ) from None
    except IntegrityError as exc:
        # The volume's own message is deliberately bare; say which volume failed.
        raise IntegrityError(
            f"volume {name!r} at {storage} failed its integrity check (damaged or tampered)"
        ) from exc
    if vol.version < grant.version:
        vol.close()
        raise RollbackError(f"volume {name!r} is older than the state the CAS recorded")
    return vol


def mount_all(
    grants: Mapping[str, VolumeGrant],
    storage: Mapping[str, Path],
    *,
    policy: str,
    cas: str,
    target: Callable[[str, VolumeGrant], Path],
    owner: tuple[int, int] | None = None,
) -> list[MountedVolume]:
    """Open and mount every volume at ``target(name, grant)``, an empty directory the
    function makes, its files shown as ``owner``'s (uid, gid); on any failure unmount
    what was mounted and raise."""
    missing = sorted(set(grants) - set(storage))
    if missing:
        raise UsageError(
            "the policy mounts volumes with no storage given: "
            + ", ".join(f"--volume {n}=PATH" for n in missing)
        )
    mounted: list[MountedVolume] = []
    try:
        for name, grant in sorted(grants.items()):
            created = None if storage[name].exists() else storage[name]
            vol = open_volume(name, grant, storage[name], policy=policy, cas=cas)
            try:
                m = mount(vol, target(name, grant), read_only=grant.mode == "ro", owner=owner)
            except BaseException:
                vol.close()
                _forget(created)
                raise
            mounted.append(MountedVolume(name, grant, vol, m, created))
    except BaseException:
        unmount_all(mounted, commit=False)
        raise
    return mounted


def unmount_all(
    mounted: list[MountedVolume],
    *,
    commit: bool,
    keep: Mapping[str, Collection[str]] | None = None,
) -> dict[str, tuple[str, int]]:
    """Unmount every volume; commit the writable ones when ``commit``; without ``commit``,
    commit only the files ``keep`` names (volume -> paths inside it) that changed.

    Returns the new (tag, version) of each volume whose state changed.
    """
    changed: dict[str, tuple[str, int]] = {}
    for mv in reversed(mounted):
        try:
            writable = mv.grant.mode == "rw"
            kept = (keep or {}).get(mv.name, ()) if writable else ()
            tag = mv.mount.unmount(commit=commit and writable, keep=kept)
            if tag is not None and tag != mv.grant.tag:
                changed[mv.name] = (tag, mv.volume.version)
        finally:
            mv.volume.close()
        if mv.name not in changed:
            _forget(mv.created)
    return changed


def _forget(created: Path | None) -> None:
    """Remove a volume this run created and never committed: an empty copy the CAS has no
    state of, which the next run would have to refuse (``rollback: protected``) until an
    owner registered it. Without it, the next run creates the volume afresh."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)

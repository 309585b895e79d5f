"""Owners' recovery shares of the CAS master key (threshold k of n, as MarbleRun's recovery
keys hold).

The CAS is given a *recovery set* (``cas serve --recovery-keys FILE``): a threshold and
the owners' X25519 recovery public keys. It splits its master key into one Shamir share per
owner (:meth:`MasterKey.split`) and seals each share to its owner's key; the sealed shares,
the set and a MAC under the master key are ``recovery.json`` in the data directory, and a
backup carries them. To recover, each of k owners opens their share with their recovery
private key (``securetf cas recovery-share``), and ``securetf cas recover`` combines them.

Fewer than k shares give nothing (refused before combining: Shamir's scheme reveals nothing
about the key from k-1 shares); shares of another split, or a forged share, fail the MAC.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from securetf._fsutil import atomic_write, read_file
from securetf._logutil import warn_loudly
from securetf.cas.master_key import MasterKey
from securetf.crypto import random_bytes
from securetf.crypto.sealed_box import BoxKey, seal_to
from securetf.errors import Error, IntegrityError, UsageError
from securetf.policy import canonical_json

__all__ = [
    "RECOVERY_FILE",
    "RecoveryError",
    "RecoverySet",
    "Share",
    "ShareSet",
    "ensure_shares",
    "public_key_text",
]

RECOVERY_FILE = "recovery.json"
_PREFIX = "x25519:"
_MAC_INFO = b"securetf-cas-recovery-v1"
_SHARE_INFO = b"securetf-cas-recovery-share-v1\x00"

_log = logging.getLogger(__name__)


class RecoveryError(Error):
    """Recovery refused: too few shares, shares of another backup, a tampered backup.
    Nothing was written. Exit code 3."""

    exit_code = 3


def public_key_text(raw: bytes) -> str:
    return _PREFIX + raw.hex()


def _public_key(text: object, where: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(_PREFIX):
        raise UsageError(f"{where}: a recovery public key is x25519:<64 hex digits>")
    try:
        raw = bytes.fromhex(text[len(_PREFIX) :])
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"{where}: a recovery public key is x25519:<64 hex digits>")
    return raw


@dataclass(frozen=True)
class RecoverySet:
    """Who holds shares (name and X25519 public key, in order) and how many rebuild the key."""

    threshold: int
    owners: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_json(cls, value: Any, where: str) -> RecoverySet:
        if not isinstance(value, dict) or set(value) != {"threshold", "owners"}:
            raise UsageError(f"{where}: expected {{threshold: K, owners: [{{name, public_key}}]}}")
        owners = value["owners"]
        if not isinstance(owners, list) or not owners:
            raise UsageError(f"{where}: owners must be a non-empty list")
        parsed: list[tuple[str, bytes]] = []
        for item in owners:
            if not isinstance(item, dict) or set(item) != {"name", "public_key"}:
                raise UsageError(f"{where}: each owner is {{name, public_key}}")
            name = item["name"]
            if not isinstance(name, str) or not name:
                raise UsageError(f"{where}: an owner's name must be a non-empty string")
            parsed.append((name, _public_key(item["public_key"], where)))
        if len({n for n, _ in parsed}) != len(parsed) or len({k for _, k in parsed}) != len(parsed):
            raise UsageError(f"{where}: owners' names and keys must be distinct")
        threshold = value["threshold"]
        if type(threshold) is not int or not 1 <= threshold <= len(parsed):
            raise UsageError(f"{where}: threshold must be between 1 and {len(parsed)}")
        return cls(threshold, tuple(parsed))

    @classmethod
    def load(cls, path: Path) -> RecoverySet:
        try:
            value = json.loads(read_file(path, "recovery keys file"))
        except (ValueError, RecursionError):
            raise UsageError(f"{path} is not JSON") from None
        return cls.from_json(value, str(path))

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "owners": [{"name": n, "public_key": public_key_text(k)} for n, k in self.owners],
        }

    def digest(self) -> str:
        """``sha256:<hex>`` of the set (what the CAS's identity entry names)."""
        return "sha256:" + sha256(canonical_json(self.to_json())).hexdigest()


@dataclass(frozen=True)
class Share:
    """One owner's opened share: what ``securetf cas recover`` takes."""

    split: str
    owner: str
    index: int
    value: bytes

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "owner": self.owner, "index": self.index,
                "share": self.value.hex()}  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Share:
        try:
            v = json.loads(read_file(path, "recovery share"))
            share = cls(
                str(v["split"]), str(v["owner"]), int(v["index"]), bytes.fromhex(v["share"])
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            raise UsageError(
                f"{path} is not a recovery share (securetf cas recovery-share)"
            ) from None
        return share


def _share_info(split: str, owner: str, index: int) -> bytes:
    return _SHARE_INFO + canonical_json([split, owner, index])


@dataclass(frozen=True)
class ShareSet:
    """The sealed shares of one split of the master key, authenticated under that key."""

    recovery: RecoverySet
    split: str
    sealed: tuple[tuple[int, bytes], ...]  # per owner, in the set's order: index, sealed share
    mac: bytes

    @classmethod
    def create(cls, master: MasterKey, recovery: RecoverySet) -> ShareSet:
        split = random_bytes(16).hex()
        shares = master.split(recovery.threshold, len(recovery.owners))
        sealed = tuple(
            (i, seal_to(key, value, info=_share_info(split, name, i)))
            for (name, key), (i, value) in zip(recovery.owners, shares, strict=True)
        )
        return cls(recovery, split, sealed, _mac(master, recovery, split, sealed))

    def verify(self, master: MasterKey) -> None:
        """Raise :class:`IntegrityError` unless ``master`` made this set (unchanged)."""
        expected = _mac(master, self.recovery, self.split, self.sealed)
        if not hmac.compare_digest(expected, self.mac):
            raise IntegrityError()

    def to_json(self) -> dict[str, Any]:
        return {
            "recovery": self.recovery.to_json(),
            "split": self.split,
            "shares": [{"index": i, "sealed": s.hex()} for i, s in self.sealed],
            "mac": self.mac.hex(),
        }

    @classmethod
    def from_json(cls, value: Any, where: str) -> ShareSet:
        try:
            recovery = RecoverySet.from_json(value["recovery"], where)
            sealed = tuple((int(s["index"]), bytes.fromhex(s["sealed"])) for s in value["shares"])
            share_set = cls(recovery, str(value["split"]), sealed, bytes.fromhex(value["mac"]))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{where} does not hold recovery shares") from None
        if len(sealed) != len(recovery.owners):
            raise UsageError(f"{where} does not hold one share per recovery owner")
        return share_set

    @classmethod
    def load(cls, data_dir: Path) -> ShareSet | None:
        path = data_dir / RECOVERY_FILE
        if not path.exists():
            return None
        try:
            value = json.loads(read_file(path, "recovery shares"))
        except (ValueError, RecursionError):
            raise UsageError(f"{path} is not JSON") from None
        return cls.from_json(value, str(path))

    def save(self, data_dir: Path) -> None:
        atomic_write(data_dir / RECOVERY_FILE, canonical_json(self.to_json()), mode=0o600)

    def open_share(self, key: BoxKey) -> Share:
        """The share sealed to ``key``'s owner."""
        for (name, public), (index, sealed) in zip(self.recovery.owners, self.sealed, strict=True):
            if public == key.public():
                try:
                    value = key.open(sealed, info=_share_info(self.split, name, index))
                except IntegrityError:
                    raise RecoveryError(
                        f"the share of {name!r} does not open with this key: the backup was "
                        "changed; use an untampered backup"
                    ) from None
                return Share(self.split, name, index, value)
        raise RecoveryError(
            f"this recovery key ({public_key_text(key.public())}) holds no share of this "
            f"backup; its owners are {', '.join(n for n, _ in self.recovery.owners)}"
        )

    def combine(self, shares: list[Share]) -> MasterKey:
        """The master key from at least ``threshold`` distinct owners' shares of this split;
        :class:`RecoveryError` (nothing recovered) otherwise."""
        known = {
            name: index
            for (name, _), (index, _) in zip(self.recovery.owners, self.sealed, strict=True)
        }
        picked: dict[str, Share] = {}
        for share in shares:
            if share.split != self.split:
                raise RecoveryError(
                    f"the share of {share.owner!r} belongs to another backup or recovery set "
                    "(its split differs): nothing recovered"
                )
            if known.get(share.owner) != share.index:
                raise RecoveryError(f"{share.owner!r} holds no share {share.index} of this backup")
            picked[share.owner] = share
        need = self.recovery.threshold
        if len(picked) < need:
            raise RecoveryError(
                f"{len(picked)} distinct owners' shares given, {need} of "
                f"{len(self.recovery.owners)} needed: nothing recovered (fewer shares reveal "
                "nothing about the key). Ask more owners for `securetf cas recovery-share`"
            )
        master = MasterKey.combine([(s.index, s.value) for s in picked.values()])
        try:
            self.verify(master)
        except IntegrityError:
            raise RecoveryError(
                "the shares do not rebuild the key these shares were made from (a share is "
                "wrong, or the backup's recovery section was changed): nothing recovered"
            ) from None
        return master


def ensure_shares(data_dir: Path, master: MasterKey, recovery: RecoverySet) -> ShareSet:
    """The data directory's share set for ``recovery``, made (and saved) unless it exists."""
    current = ShareSet.load(data_dir)
    if current is not None and current.recovery == recovery:
        try:
            current.verify(master)
            return current
        except IntegrityError:
            _log.warning("%s was not made with this master key: making new shares", RECOVERY_FILE)
    if current is not None:
        warn_loudly(_log, "the recovery set changed: new shares replace the old ones")
    made = ShareSet.create(master, recovery)
    made.save(data_dir)
    return made


def _mac(
    master: MasterKey, recovery: RecoverySet, split: str, sealed: tuple[tuple[int, bytes], ...]
) -> bytes:
    key = master.derive(salt=b"", info=_MAC_INFO)
    content = canonical_json([recovery.to_json(), split, [[i, s.hex()] for i, s in sealed]])
    return hmac.new(key, content, sha256).digest()

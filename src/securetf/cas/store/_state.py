"""Authenticated state: the CAS trusts a row only if a MAC under its master key vouches for it.

Whoever can write the database (a PostgreSQL operator, a restored backup, the storage) must
not be able to make the CAS release anything by inserting, changing, deleting, replaying or
relabelling rows. The database does not hold the key that vouches for them:

    state key   = HKDF-SHA-256(master key, salt = "", info = "securetf-cas-state-v1")
    row MAC     = HMAC-SHA-256(state key, canonical JSON [table, {column: value}])
    policy head = {name, epoch, rows: {"<table>/<key>": row MAC hex}}, MACed likewise
    state head  = {epoch, policies: {name: policy head MAC hex}}, MACed likewise

Every row the CAS decides from (policy versions, the pending update and its secrets,
secrets, the CA, instances, volume tags) is listed in its policy's head under its key, and
each policy head is listed in the one state head. A read checks the row against the MAC
its policy head lists for that key, the policy head against the state head, and the state
head's own MAC; a row the head does not list, or a head entry without its row, is a
tampered state. Column values include the policy, version and name, so a row moved to
another key fails too. Replaying an older value of one row, or one policy's whole older set
of rows, fails against the newer head; only the whole database put back to an older
complete copy (heads included) passes, which the transparency log is there to catch.

Bytes are hex in the MACed JSON; floats are exact in both databases (IEEE doubles).
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from securetf.cas.master_key import MasterKey
from securetf.errors import IntegrityError
from securetf.policy import canonical_json

__all__ = ["PolicyHead", "StateHead", "StateKey", "StateTamperedError", "VerifiedCache"]

_INFO = b"securetf-cas-state-v1"


class StateTamperedError(IntegrityError):
    """A stored row or head fails authentication: the database was changed outside the CAS.

    ``str()`` is for the caller (it names no row); :attr:`detail` is for the CAS's log and
    audit entry.
    """

    def __init__(self, policy: str | None, detail: str) -> None:
        where = f"policy {policy!r}" if policy else "the CAS"
        super().__init__(
            f"the stored state of {where} failed authentication: the CAS database was "
            "changed outside the CAS; nothing was released. Restore the database from a "
            "trusted backup and check the audit log (securetf audit verify)"
        )
        self.policy = policy
        self.detail = detail

    def diagnostics(self) -> str:
        return f"{self}: {self.detail}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


class StateKey:
    """MACs of rows and heads under the key derived from the master key."""

    __slots__ = ("_key",)

    def __init__(self, master_key: MasterKey) -> None:
        self._key = master_key.derive(salt=b"", info=_INFO)

    def mac(self, kind: str, content: Any) -> bytes:
        message = canonical_json([kind, content])
        return hmac.new(self._key, message, sha256).digest()

    def row_mac(self, table: str, values: Mapping[str, Any]) -> str:
        return self.mac(table, {k: _jsonable(v) for k, v in values.items()}).hex()


@dataclass
class PolicyHead:
    """Which rows of one policy exist, and the MAC of each."""

    name: str
    epoch: int = 0
    rows: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        return {"name": self.name, "epoch": self.epoch, "rows": self.rows}

    def text(self) -> str:
        return canonical_json(self.rows).decode()

    @classmethod
    def parse(cls, name: str, epoch: int, text: str) -> PolicyHead:
        rows = _load_map(text, name)
        return cls(name, epoch, rows)


@dataclass
class StateHead:
    """Which policies exist, and the MAC of each one's head."""

    epoch: int = 0
    policies: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "policies": self.policies}

    def text(self) -> str:
        return canonical_json(self.policies).decode()

    @classmethod
    def parse(cls, epoch: int, text: str) -> StateHead:
        return cls(epoch, _load_map(text, None))


def _load_map(text: str, policy: str | None) -> dict[str, str]:
    try:
        loaded = json.loads(text)
    except ValueError:
        raise StateTamperedError(policy, "a head's text is not JSON") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise StateTamperedError(policy, "a head's text is not a map of strings")
    return loaded


class VerifiedCache:
    """What this process already verified, keyed by the MAC that vouched for it.

    A MAC binds its content, so content cached under the MAC an authentic head lists is that
    content, whatever the database holds now: a transaction that finds the listed MAC here
    skips reading and re-MACing a policy head, and checks a row by comparing its values with
    the cached ones instead of computing its MAC. Bounded (least recently used goes first).
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, mac: str) -> Any:
        with self._lock:
            item = self._items.get(mac)
            if item is not None:
                self._items.move_to_end(mac)
            return item

    def put(self, mac: str, item: Any) -> None:
        with self._lock:
            self._items[mac] = item
            self._items.move_to_end(mac)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

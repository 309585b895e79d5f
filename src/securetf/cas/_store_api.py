"""What the CAS core needs from its store. One implementation: SQLAlchemy (SQLite, PostgreSQL).

Every call happens inside :meth:`Store.transaction`; the transaction commits when the block
exits normally and rolls back on any exception, so a refused request changes nothing.
Concurrent transactions behave as if serial (a conflict is retried inside ``transaction``
or raised as :class:`securetf.errors.Error`, never silently lost). Every read of a policy,
pending update, secret, CA, instance or tag is authenticated under the master key; a row
the CAS did not write raises :class:`securetf.cas.store.StateTamperedError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from securetf.cas._records import (
    AuditEntry,
    Instance,
    PendingUpdate,
    PolicyCa,
    PolicyVersion,
    VolumeTag,
)
from securetf.errors import Error
from securetf.log import LogTree

T = TypeVar("T")


class TagConflict(Error):  # noqa: N818 - a state the core resolves, not a fault
    """A compare-and-swap of a volume tag found another current tag (raised by the store)."""

    def __init__(self, current: VolumeTag | None) -> None:
        super().__init__("volume tag changed concurrently")
        self.current = current


class Tx(Protocol):
    # -- policies --------------------------------------------------------------------
    def current_policy(self, name: str) -> PolicyVersion | None: ...
    def version_in_force(self, name: str) -> int | None:
        """The version in force, from the authenticated state alone (no policy row read):
        versions never change once stored, so an equal number means the same policy."""

    def policy_history(self, name: str) -> list[PolicyVersion]: ...
    def policy_names(self) -> list[str]: ...
    def insert_policy(self, version: PolicyVersion) -> None:
        """Append a version; raises if (name, version) exists (no silent overwrite)."""

    def pending_update(self, name: str) -> PendingUpdate | None: ...
    def put_pending(self, pending: PendingUpdate) -> None:
        """Create or replace the one pending update of ``pending.name``."""

    def delete_pending(self, name: str) -> None: ...

    # -- replay protection -----------------------------------------------------------
    def seen_request_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` recorded before."""

    def record_request_ids(self, ids: Iterable[str], now: float) -> None: ...

    # -- secrets (encrypted at rest by the store under the master key) --------------------
    def put_secret(self, policy: str, name: str, value: bytes) -> None:
        """Create or replace; the value is stored encrypted, bound to (policy, name)."""

    def get_secret(self, policy: str, name: str) -> bytes | None: ...

    # -- certificate authorities -------------------------------------------------------
    def put_ca(self, ca: PolicyCa) -> None:
        """The CA key is stored encrypted like a secret."""

    def get_ca(self, policy: str) -> PolicyCa | None: ...

    # -- nonces --------------------------------------------------------------------------
    def spend_nonce(self, nonce: bytes, expires_at: float) -> bool:
        """Record ``nonce`` as spent; True only for the first spender (of two concurrent
        transactions, on one replica or two, one commits True, the other sees False)."""

    def purge_nonces(self, before: float) -> None:
        """Forget the spent nonces that expired before ``before`` (no longer accepted)."""

    # -- attested instances ------------------------------------------------------------
    def add_instance(self, instance: Instance) -> list[int]:
        """Record an attested instance; the previous instances of its slot (policy, service,
        instance number) are superseded: removed, their serials returned."""

    def get_instance(self, serial: int) -> Instance | None:
        """The live instance with this serial (None once superseded)."""

    def next_serial(self) -> int:
        """A fresh, never reused certificate serial number (positive, < 2**63)."""

    # -- volume tags ---------------------------------------------------------------------
    def get_tag(self, policy: str, volume: str) -> VolumeTag | None: ...
    def swap_tag(self, expected: str | None, new: VolumeTag) -> None:
        """Set the tag if the current one is ``expected`` (None: no tag yet); else raise
        :class:`TagConflict` with the current tag. Serializable under concurrency."""

    # -- audit ---------------------------------------------------------------------------
    def append_audit(
        self, kind: str, policy: str | None, detail: dict[str, Any], now: float
    ) -> AuditEntry:
        """Append one entry to the hash chain and sign it with the audit key."""

    def admit_refusal(self, source: str, window: int, limit: int) -> bool:
        """Count one audited refusal of ``source`` in ``window`` (a number of the clock's
        windows, the same in every replica); False, writing nothing, once ``limit`` were."""

    def audit_head(self) -> tuple[int, bytes]:
        """The head row: ``seq`` and ``chain`` of the last entry appended (0 and 32 zero
        bytes before the first). Read in the same transaction as the entries it heads."""

    def audit_entries(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditEntry]: ...

    # -- transparency log ------------------------------------------------------------------
    def append_log(self, entry: bytes, ref: str | None = None) -> int:
        """Append ``entry`` (:mod:`securetf.cas._log_entries`) to the transparency log in
        this transaction; return its index, which ``log_ref(ref)`` then finds."""

    def log_ref(self, ref: str) -> int | None:
        """The index of the entry appended last under ``ref`` (``policy_ref``, ...)."""

    def log_cosign(self, witness: str, size: int, root: bytes, line: bytes) -> bool:
        """Keep a witness's (verified) cosignature line unless it has a newer one."""

    def log_cosignatures(self) -> list[tuple[str, int, bytes, bytes]]:
        """(witness, size, root, line) of each witness's latest cosignature."""

    def log_witnessed(self, size: int, root: bytes, lines: bytes) -> None:
        """Keep the checkpoint k witnesses cosigned unless a larger one is kept."""

    def log_counted(self) -> tuple[int, bytes, bytes] | None:
        """(size, root, lines) of the largest checkpoint k witnesses cosigned."""

    def log_identity(self, entry: bytes) -> int | None:
        """Append the CAS's identity ``entry`` unless it is the last one logged; its index,
        or None when nothing changed."""

    def log_tree(self) -> LogTree:
        """The transparency log as this transaction sees it."""


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Tx]:
        """One attempt; a lost race (PostgreSQL) raises a retryable ``Error``."""

    def run(self, fn: Callable[[Tx], T], *, writes: bool = True) -> T:
        """``fn`` in a transaction, re-run a bounded number of times while concurrent
        transactions conflict with it. ``fn`` must be pure database work (safe to re-run).
        ``writes=False`` declares that ``fn`` only reads: it then does not queue behind the
        writers of other replicas (PostgreSQL); a write in it is still safe, only slower."""

    def nonce_key(self) -> bytes:
        """The key provisioning nonces are MACed with: derived from the master key, the
        same in every replica of the CAS on this database."""

    def log_reader(self) -> LogTree:
        """The transparency log, for reads outside a transaction."""

    def close(self) -> None: ...

"""Owners' check of the audit chain as the CAS shows it to them (docs/cas.md, "Audit").

Entries of the owner's policy arrive whole; others' only as digest, chain and signature,
which is all a link needs. Steps, per entry in order:

1. ``seq`` continues the sequence from 1.
2. A whole entry's content hashes to its digest (an edited entry fails here).
3. ``chain = SHA-256(previous chain || digest)`` (a removed or reordered entry fails here).
4. The CAS audit key signed the chain (a re-computed chain fails here).

The log arrives in pages (:class:`AuditReader`), each naming the head of the whole log.
For the read as a whole:

5. The head the first page names is signed by the CAS; no later page names an older one.
6. The head this client verified before (kept, see :mod:`securetf.client.audit_heads`) lies
   on the chain: the log is not shorter, and the entry at its ``seq`` has its chain.
7. The read ends exactly at the head: the entry at its ``seq`` has its chain.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from securetf.cas.audit import AUDIT_SIGNING_CONTEXT, GENESIS_CHAIN, audit_digest
from securetf.crypto import VerifyKey, constant_time_equal, sha256
from securetf.errors import AuthenticationError, IntegrityError, RollbackError, UsageError
from securetf.protocol import AuditHead, AuditPage

__all__ = ["AuditReader", "AuditTrail", "ChainHead", "verify_audit_view"]


@dataclass(frozen=True)
class ChainHead:
    """A point of the chain: the entry at ``seq`` has ``chain``, signed by ``signature``."""

    seq: int
    chain: bytes
    signature: bytes

    @classmethod
    def from_wire(cls, head: AuditHead) -> ChainHead:
        try:
            return cls(head.seq, bytes.fromhex(head.chain), bytes.fromhex(head.signature))
        except ValueError:
            raise IntegrityError("the audit log's head is not hex") from None


@dataclass(frozen=True)
class AuditTrail:
    """A verified read: the head reached and the entries of ``policy`` up to it, whole."""

    policy: str
    head: ChainHead
    entries: list[dict[str, Any]] = field(default_factory=list)


def _rolled_back(what: str, kept: ChainHead) -> RollbackError:
    return RollbackError(
        f"the CAS's audit log was rolled back or forked: {what}, but this client verified "
        f"it up to seq {kept.seq} (chain {kept.chain.hex()[:16]}...) before. Do not trust "
        "this CAS's state; tell its operators and the policy's other owners (the head "
        "verified last is kept under $SECURETF_HOME/audit-heads)"
    )


def _hex(entry: Mapping[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(str(entry[field]))
    except (KeyError, ValueError):
        raise IntegrityError(f"audit entry {entry.get('seq')} has no valid {field}") from None


def _check_signature(key: VerifyKey, signature: bytes, chain: bytes, what: str) -> None:
    try:
        key.verify(signature, AUDIT_SIGNING_CONTEXT + chain)
    except AuthenticationError:
        raise IntegrityError(f"{what} is not signed by the CAS") from None


def verify_audit_view(
    entries: Sequence[Mapping[str, Any]],
    key: VerifyKey,
    *,
    policy: str,
    after: int = 0,
    prev_chain: bytes = GENESIS_CHAIN,
    kept: ChainHead | None = None,
) -> bytes:
    """Verify the entries that follow seq ``after`` (whose chain is ``prev_chain``); return
    the last chain. Raises :class:`IntegrityError` naming the entry, or
    :class:`RollbackError` when the entry at ``kept.seq`` does not have ``kept.chain``."""
    chain = prev_chain
    for index, entry in enumerate(entries, start=after + 1):
        # 1. Sequence.
        if entry.get("seq") != index:
            raise IntegrityError(f"audit entry {index} is missing or out of order")
        digest = _hex(entry, "digest")
        # 2. Content of this owner's entries.
        if entry.get("policy") == policy:
            try:
                content = audit_digest(
                    index, float(entry["time"]), str(entry["kind"]), policy, entry["detail"]
                )
            except (KeyError, TypeError, ValueError, UsageError):
                raise IntegrityError(f"audit entry {index} is malformed") from None
            if not constant_time_equal(content, digest):
                raise IntegrityError(f"audit entry {index} was altered")
        # 3. Link.
        chain = sha256(chain, digest)
        if not constant_time_equal(chain, _hex(entry, "chain")):
            raise IntegrityError(f"audit entry {index} does not link to the one before it")
        # 4. Signature.
        _check_signature(key, _hex(entry, "signature"), chain, f"audit entry {index}")
        # 6. The head verified before is on this chain.
        if kept is not None and index == kept.seq and not constant_time_equal(chain, kept.chain):
            raise _rolled_back(f"its entry {index} is another one now", kept)
    return chain


class AuditReader:
    """Checks the pages of one read of the log, in order; :attr:`after` is the cursor to ask
    for next, until :attr:`done`. Then :meth:`trail` is the verified result."""

    def __init__(self, key: VerifyKey, *, policy: str, kept: ChainHead | None = None) -> None:
        self._key = key
        self._policy = policy
        self._kept = kept
        self._head: ChainHead | None = None
        self._seq = 0
        self._chain = GENESIS_CHAIN
        self._mine: list[dict[str, Any]] = []

    @property
    def after(self) -> int:
        return self._seq

    @property
    def done(self) -> bool:
        return self._head is not None and self._seq == self._head.seq

    def add_page(self, page: AuditPage) -> None:
        head = ChainHead.from_wire(page.head)
        if self._head is None:
            self._first_head(head)
            target = head
        else:
            target = self._head
            if head.seq < target.seq or (head.seq == target.seq and head.chain != target.chain):
                raise IntegrityError(
                    f"the CAS's audit log went back from seq {target.seq} to {head.seq} "
                    "during this read; read it again, and if this repeats, stop trusting it"
                )
        # Entries past the first head are left for the next read: the read has an end.
        entries = page.entries[: target.seq - self._seq]
        if not entries and self._seq < target.seq:
            raise IntegrityError(
                f"the CAS sent no audit entries after seq {self._seq}, short of its head "
                f"at seq {target.seq}"
            )
        self._chain = verify_audit_view(
            entries,
            self._key,
            policy=self._policy,
            after=self._seq,
            prev_chain=self._chain,
            kept=self._kept,
        )
        self._seq += len(entries)
        self._mine += [dict(e) for e in entries if e.get("policy") == self._policy]
        # 7. The read ends at the head.
        if self._seq == target.seq and not constant_time_equal(self._chain, target.chain):
            raise IntegrityError(f"the audit log's head is not its entry {target.seq}")

    def _first_head(self, head: ChainHead) -> None:
        # 5. The head is the CAS's.
        if head.seq == 0:
            if head.chain != GENESIS_CHAIN:
                raise IntegrityError("the audit log is empty but names a head")
        else:
            _check_signature(self._key, head.signature, head.chain, "the audit log's head")
        # 6. Not shorter than the head verified before.
        if self._kept is not None and head.seq < self._kept.seq:
            raise _rolled_back(f"it ends at seq {head.seq} now", self._kept)
        self._head = head

    def trail(self) -> AuditTrail:
        if self._head is None or not self.done:
            raise IntegrityError("the audit log was not read up to its head")
        return AuditTrail(self._policy, self._head, self._mine)

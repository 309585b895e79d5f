"""Checking a checkpoint: the log's signature, then k of n witness cosignatures.

A witness cosigns only a checkpoint consistent with every one it cosigned before
(C2SP tlog-witness), so a log that shows two clients two different trees needs k
witnesses to sign both: with k of n required, a split view needs that many accomplices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from securetf._logutil import warn_loudly
from securetf.errors import UsageError
from securetf.log._checkpoint import Checkpoint
from securetf.log._errors import NoteError
from securetf.log._keys import CosignatureVerifier, Ed25519Verifier
from securetf.log._note import Verifiers, open_note

__all__ = ["VerifiedCheckpoint", "WitnessPolicy", "verify_checkpoint"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witnesses a reader trusts, and how many of them must have cosigned."""

    witnesses: tuple[CosignatureVerifier, ...]
    threshold: int
    _unsafe: bool = field(default=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        if self._unsafe:
            return
        if not 1 <= self.threshold <= len(self.witnesses):
            raise UsageError(
                f"a witness threshold lies in 1..{len(self.witnesses)} (the number of "
                f"witnesses), not {self.threshold}; WitnessPolicy.unsafe_no_witnesses() "
                "is the explicit way to trust the log alone"
            )
        # One vote per witness: a cosignature/v1 does not sign the witness's name, so one
        # key listed under two names would count one signature twice, and one name with
        # two keys would let one operator cast two votes.
        keys = [w.key.raw() for w in self.witnesses]
        names = [w.name for w in self.witnesses]
        if len(set(keys)) != len(keys) or len(set(names)) != len(names):
            raise UsageError("each witness must be listed once, with one name and one key")

    @classmethod
    def of(cls, witnesses: Sequence[CosignatureVerifier], threshold: int) -> WitnessPolicy:
        return cls(tuple(witnesses), threshold)

    @classmethod
    def unsafe_no_witnesses(cls) -> WitnessPolicy:
        """Trust the log's signature alone: nothing stops it from showing a split view."""
        return cls((), 0, _unsafe=True)


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    note: bytes  # the exact bytes verified, to keep as evidence
    cosigned: Mapping[str, int]  # witness name -> the POSIX time it cosigned


def verify_checkpoint(
    note: bytes,
    log: Ed25519Verifier,
    policy: WitnessPolicy,
    *,
    origin: str | None = None,
) -> VerifiedCheckpoint:
    """Return the checkpoint in ``note`` if ``log`` signed it for ``origin`` (default: the
    log key's name) and at least ``policy.threshold`` of its witnesses cosigned it; raise
    :class:`NoteError` otherwise."""
    # 1. The note's format, and every signature by a key we know (log and witnesses).
    opened = open_note(note, Verifiers([log, *policy.witnesses]))
    # 2. The log's own signature.
    if opened.signed_by(log) is None:
        raise NoteError(f"the checkpoint is not signed by the log key {log.name}+{log.key_id:08x}")
    # 3. A well-formed checkpoint of this log.
    checkpoint = Checkpoint.parse(opened.text)
    expected = log.name if origin is None else origin
    if checkpoint.origin != expected:
        raise NoteError(f"the checkpoint is for the log {checkpoint.origin!r}, not {expected!r}")
    # 4. Enough distinct witnesses (a policy lists each key once).
    cosigned = {
        w.name: CosignatureVerifier.timestamp(sig.signature)
        for w in policy.witnesses
        if (sig := opened.signed_by(w)) is not None
    }
    if policy._unsafe:
        warn_loudly(_log, "checkpoints are accepted without witnesses: a split view goes unseen")
    elif len(cosigned) < policy.threshold:
        raise NoteError(
            f"the checkpoint has {len(cosigned)} of the {policy.threshold} witness "
            f"cosignatures it needs (of {len(policy.witnesses)} trusted witnesses)"
        )
    return VerifiedCheckpoint(checkpoint, note, cosigned)

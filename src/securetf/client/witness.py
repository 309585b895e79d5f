"""A witness of a CAS's transparency log (C2SP tlog-witness, pulled instead of pushed).

Each round: fetch the checkpoint the CAS asks witnesses to cosign, verify it with the
pinned log key, prove it consistent with the last checkpoint this witness cosigned (its
state file), keep it there, and only then post the cosignature/v1 to the CAS. A witness
never cosigns a checkpoint that does not extend its state: a CAS that forks its log or
puts back an older database loses its witnesses, and with them the checkpoints clients
accept (a CAS that requires k of n).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from securetf._fsutil import atomic_write
from securetf.client.caslog import MAX_RESPONSE, CasLogClient
from securetf.client.pins import cas_file_stem
from securetf.errors import UsageError
from securetf.log import (
    Checkpoint,
    CosignatureSigner,
    LogRollbackError,
    ProofError,
    WitnessPolicy,
    signature_line,
    verify_checkpoint,
)
from securetf.protocol.messages import CosignatureKept, WitnessCosignature

__all__ = ["Cosigned", "state_path", "witness_once"]


@dataclass(frozen=True)
class Cosigned:
    previous: Checkpoint | None
    checkpoint: Checkpoint
    kept: bool  # the CAS kept the cosignature (False: it has a newer one of this witness)


def state_path(home: Path, url: str, signer: CosignatureSigner) -> Path:
    """Where a witness keeps the last checkpoint it cosigned, by default."""
    return home / "witness" / f"{cas_file_stem(url)}.{signer.key_id:08x}.checkpoint"


def witness_once(log: CasLogClient, signer: CosignatureSigner, state: Path) -> Cosigned:
    """One round (see the module's docstring); raise :class:`ForkError` or
    :class:`LogRollbackError` (never cosigning) if the log does not extend the state."""
    verifier = log.log_verifier
    alone = WitnessPolicy.unsafe_no_witnesses()  # the log's own signature: what we cosign
    # 1. The checkpoint to cosign, signed by the pinned log key.
    note = log.fetch("witness/checkpoint", MAX_RESPONSE)
    new = verify_checkpoint(note, verifier, alone).checkpoint
    # 2. The last one this witness cosigned (its own file, still checked).
    old = None
    if state.exists():
        old = verify_checkpoint(state.read_bytes(), verifier, alone).checkpoint
        # 3. The new one extends it, by a consistency proof from the log's tiles.
        try:
            log.tiles.check_consistency(old, new)
        except LogRollbackError:
            raise LogRollbackError(
                f"the log at {log.pin.url} asks to cosign {new.size} entries, but this "
                f"witness cosigned {old.size} before: it was rolled back; not cosigned "
                f"(keep {state} as evidence)"
            ) from None
        except ProofError as exc:
            raise type(exc)(
                f"the log at {log.pin.url} asks to cosign a tree of {new.size} entries that "
                f"does not extend the {old.size} this witness cosigned ({exc}): a fork; not "
                f"cosigned (keep {state} as evidence)"
            ) from None
    # 4. Cosign, keep the state (before the cosignature leaves), post.
    line = signature_line(signer, new.text())
    state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if old is None or new.size > old.size:
        atomic_write(state, note + line, mode=0o600)
    body = WitnessCosignature(size=new.size, signature=line.decode())
    answer = log.post("witness/cosignature", body.model_dump(mode="json"))
    return Cosigned(old, new, CosignatureKept.model_validate_json(answer).kept)


def load_signer(path: Path) -> CosignatureSigner:
    """The witness key in ``path`` (``securetf log witness-key`` wrote it)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the witness key {path}: {exc.strerror}") from exc
    if os.stat(path).st_mode & 0o077:
        raise UsageError(f"the witness key {path} is readable by others: chmod 600 it")
    return CosignatureSigner.load(text, clock=time.time)

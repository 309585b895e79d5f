"""The checkpoint a client home kept from the last check of a CAS's log, which the next
checkpoint must extend (:class:`securetf.client.caslog.CasLogClient`).

One file per CAS and log key, ``$SECURETF_HOME/cas-pins/<host>_<port>.<log key ID>.checkpoint``
(the exact signed note, mode 0600), shared by every client of the home, replaced only
after the checkpoint it holds was shown to be a prefix of the new one, under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

from securetf._fsutil import atomic_write
from securetf.attestation.sim_key import securetf_home
from securetf.client.pins import CasPin, cas_file_stem
from securetf.log import (
    Checkpoint,
    Ed25519Verifier,
    ForkError,
    LogRollbackError,
    ProofError,
    VerifiedCheckpoint,
    WitnessPolicy,
    parse_vkey,
    verify_checkpoint,
)

__all__ = ["KeptCheckpoint", "kept_path"]


def kept_path(pin: CasPin, home: Path | None, key_id: int | None = None) -> Path:
    # One file per CAS and log key: a CAS attested anew with another log key is another
    # log (its identity entry says so), with a history of its own.
    key = parse_vkey(pin.log_vkey or "").key_id if key_id is None else key_id
    stem = f"{cas_file_stem(pin.url)}.{key:08x}"
    return (home or securetf_home()) / "cas-pins" / f"{stem}.checkpoint"


class KeptCheckpoint:
    """The kept checkpoint of the log whose key is ``verifier``, in ``path``."""

    def __init__(self, path: Path, verifier: Ed25519Verifier) -> None:
        self.path = path
        self._verifier = verifier
        # The note this client last read or wrote, verified: read again unchanged, it
        # needs no second signature check (the verifier is fixed).
        self._verified: tuple[bytes, Checkpoint] | None = None

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def size(self) -> int | None:
        """The kept checkpoint's size, unverified (a hint, such as the tree a CAS's
        consistency proof should start from)."""
        note = self.read()
        try:
            return int(note.split(b"\n", 2)[1]) if note is not None else None
        except (IndexError, ValueError):
            return None

    def advance(
        self,
        current_checkpoint: Callable[[], VerifiedCheckpoint],
        check: Callable[[Checkpoint, Checkpoint], None],
        where: str,
    ) -> tuple[Checkpoint | None, VerifiedCheckpoint]:
        """(the kept checkpoint, the current one): the current one shown by ``check`` to
        extend the kept one, then kept in its place. ``where``: the log, for errors."""
        with _locked(self.path):
            # 1. The kept checkpoint, verified again: the file is only as good as its
            #    signature (its cosignatures were checked when it was kept).
            kept_note = self.read()
            old = None
            if kept_note is not None:
                old = self._verified_checkpoint(kept_note)
            # 2. The current one, signed by the pinned log key (and k witnesses).
            current = current_checkpoint()
            # 3. It extends the kept one: never smaller, same root at the same size, and a
            #    consistency proof between them.
            if old is not None:
                _check_extends(check, old, current.checkpoint, self.path, where)
            # 4. Keep it, only now (the same one again is not written).
            if kept_note != current.note:
                atomic_write(self.path, current.note, mode=0o600)
            self._verified = (current.note, current.checkpoint)
        return old, current

    def _verified_checkpoint(self, note: bytes) -> Checkpoint:
        """The kept ``note``'s checkpoint, its log signature checked unless these exact
        bytes were checked by this client already."""
        known = self._verified
        if known is not None and known[0] == note:
            return known[1]
        no_witnesses = WitnessPolicy.unsafe_no_witnesses()
        checkpoint = verify_checkpoint(note, self._verifier, no_witnesses).checkpoint
        self._verified = (note, checkpoint)
        return checkpoint


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One verify at a time per kept file, across processes: two verifiers that each saw a
    different size never put the kept checkpoint back to the smaller one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _check_extends(
    check: Callable[[Checkpoint, Checkpoint], None],
    old: Checkpoint,
    new: Checkpoint,
    kept: Path,
    where: str,
) -> None:
    evidence = f"keep {kept} and the current checkpoint as evidence"
    try:
        check(old, new)
    except LogRollbackError:
        raise LogRollbackError(
            f"{where} shows a log of {new.size} entries, but this client saw {old.size} "
            f"before: its log was rolled back (a restored database?); {evidence}"
        ) from None
    except ProofError as exc:
        # At the same size a different root; at a larger one no proof that it extends the
        # old tree: either way the log shows a history other than the one it showed.
        raise ForkError(
            f"{where} shows a log of {new.size} entries that does not extend the "
            f"{old.size} this client saw before ({exc}): its log forked; {evidence}"
        ) from None

"""The CAS's transparency log as the world reads it: signed checkpoints, entries, proofs,
tlog-tiles.

The log key is ``log.key`` beside the audit key, sealed under the master key
(:mod:`securetf.cas._identity_keys`); its origin and the audit key's endorsement of it are in
:mod:`securetf.protocol.logkey`. Every read here is anonymous and bounded
(:data:`MAX_ENTRIES`, one tile): the log holds only what policies publish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    CosignatureVerifier,
    Ed25519Signer,
    LogTree,
    NoteError,
    Verifiers,
    encode_bundle,
    open_note,
    parse_vkey,
)
from securetf.log._checkpoint import CheckpointSigner
from securetf.log._limits import TILE_HEIGHT, TILE_WIDTH
from securetf.log._proofs import SubtreeHashes, consistency_proof, inclusion_proof
from securetf.log._tilepath import ENTRIES, Level
from securetf.protocol.messages import LogBundle, LogBundleEntry

__all__ = ["LOG_KEY_FILE", "MAX_COSIGNATURE_LINE", "MAX_ENTRIES", "CasLog", "Witnessing"]

LOG_KEY_FILE = "log.key"
#: Most entries one anonymous read returns (one entry bundle).
MAX_ENTRIES = TILE_WIDTH
#: Longest cosignature line a witness may post (a name of up to 128 bytes and 76 bytes of
#: base64 key ID, timestamp and signature fit).
MAX_COSIGNATURE_LINE = 512


@dataclass(frozen=True)
class Witnessing:
    """The witnesses a CAS requires (``CasSettings.log_witnesses``, ``..._threshold``) and
    where their cosignatures are kept (:meth:`securetf.cas.Cas.log_cosign`, ...)."""

    witnesses: tuple[CosignatureVerifier, ...]
    threshold: int
    keep: Callable[[str, int, bytes, bytes], bool]
    kept: Callable[[], list[tuple[str, int, bytes, bytes]]]
    keep_counted: Callable[[int, bytes, bytes], None]
    counted: Callable[[], tuple[int, bytes, bytes] | None]

    @staticmethod
    def parse(vkeys: Sequence[str], threshold: int) -> tuple[CosignatureVerifier, ...]:
        """The witnesses of the settings, checked: cosignature keys, k in 1..n."""
        witnesses = []
        for vkey in vkeys:
            verifier = parse_vkey(vkey)
            if not isinstance(verifier, CosignatureVerifier):
                raise UsageError(f"{vkey!r} is not a witness (cosignature/v1) key")
            witnesses.append(verifier)
        if len({w.name for w in witnesses}) != len(witnesses):
            raise UsageError("each witness is listed once, under a name of its own")
        if witnesses and not 1 <= threshold <= len(witnesses):
            raise UsageError(f"the witness threshold lies in 1..{len(witnesses)}, not {threshold}")
        if not witnesses and threshold:
            raise UsageError("a witness threshold needs witnesses (--log-witness VKEY)")
        return tuple(witnesses)


class CasLog:
    """Reads of the log behind ``tree``, and checkpoints signed by ``signer`` and, with
    ``witnessing``, cosigned by k of its witnesses before they count."""

    def __init__(
        self, tree: LogTree, signer: Ed25519Signer, witnessing: Witnessing | None = None
    ) -> None:
        self._tree = tree
        self._signer = signer
        self._checkpoints = CheckpointSigner(signer)
        self._witnessing = witnessing if witnessing and witnessing.witnesses else None
        # The last checkpoint signed, for the answers that read the same tree (Ed25519
        # signatures are deterministic: signing it again gives the same note).
        self._last: tuple[int, bytes, bytes] | None = None

    @property
    def origin(self) -> str:
        return self._signer.name

    @property
    def vkey(self) -> str:
        return self._signer.verifier().vkey()

    def latest(self) -> bytes:
        """The signed checkpoint of the tree as it is now (no cosignatures)."""
        with self._tree.reading() as log:
            tree = log.latest()
            return self._signed(tree.size, tree)

    def _signed(self, size: int, tree: SubtreeHashes | None = None) -> bytes:
        root = (tree or self._tree.at(size)).root()
        last = self._last
        if last is not None and last[0] == size and last[1] == root:
            return last[2]
        note = self._checkpoints.sign(size, root)
        self._last = (size, root, note)
        return note

    def checkpoint(self) -> bytes:
        """The checkpoint clients are given: the latest, or with witnesses required, the
        largest that k of them cosigned, with their cosignatures (404 before there is one)."""
        with self._tree.reading() as log:
            return self._given(log)[1]

    def _given(self, log: LogTree) -> tuple[SubtreeHashes, bytes]:
        """(the tree, its note) of :meth:`checkpoint`, read from ``log``."""
        w = self._witnessing
        if w is None:
            tree = log.latest()
            return tree, self._signed(tree.size, tree)
        counted = w.counted()
        if counted is None:
            raise NotFoundError(
                f"no checkpoint of this log has {w.threshold} witness cosignatures yet"
            )
        size, root, lines = counted
        if size > log.size():
            # A database put back behind its own counted checkpoint: nothing to give.
            raise NotFoundError("the log is behind its last witnessed checkpoint")
        tree = log.at(size)
        if root != tree.root():
            raise NotFoundError("the log is not the one its last witnessed checkpoint signs")
        return tree, self._signed(size, tree) + lines

    def bundle(self, indexes: Sequence[int | None], since: int | None) -> LogBundle | None:
        """A signed checkpoint that holds entries ``indexes``, with their inclusion proofs
        in it and the consistency proof from the tree of ``since`` entries (a client's
        kept checkpoint); None while none holds them all (with witnesses: until k of them
        cosign a larger tree), or there is none yet.

        Without witnesses it is the tree the decision's own transaction committed (or a
        later one of this process's that extends it), kept in memory: the database held
        its root at that commit, and building it reads nothing but what is not kept. Else
        it is the checkpoint clients are given, read from the database."""
        wanted = sorted({i for i in indexes if i is not None})
        if not wanted:
            return None
        if self._witnessing is None:
            with self._tree.committed(wanted[-1]) as kept:
                if kept is not None:
                    log, tree = kept
                    return _bundle(log, tree, self._signed(tree.size, tree), wanted, since)
        with self._tree.reading() as log:
            try:
                tree, note = self._given(log)
            except NotFoundError:
                return None
            if wanted[-1] >= tree.size:
                return None
            return _bundle(log, tree, note, wanted, since)

    def witness_checkpoint(self) -> bytes:
        """The checkpoint witnesses are asked to cosign: the smallest one that some (but
        not yet k) of them cosigned since the last counted one, so that they meet on one
        tree; else the latest."""
        w = self._witnessing
        if w is None:
            raise NotFoundError("this CAS requires no witnesses")
        counted = w.counted()
        done = counted[0] if counted is not None else 0
        started = [size for _, size, _, _ in w.kept() if size > done]
        if started and min(started) <= self._tree.size():
            return self._signed(min(started))
        return self.latest()

    def add_cosignature(self, size: int, line: bytes) -> bool:
        """Keep a witness's cosignature ``line`` of the tree of ``size`` if it is a valid
        cosignature/v1 by one of the required witnesses; True if kept (False: that witness
        has cosigned a larger tree already)."""
        w = self._witnessing
        if w is None:
            raise NotFoundError("this CAS requires no witnesses")
        if len(line) > MAX_COSIGNATURE_LINE or not line.endswith(b"\n"):
            raise UsageError("a cosignature is one signed-note signature line")
        self._check_size(size)
        note = self._signed(size) + line
        try:
            opened = open_note(note, Verifiers([self._signer.verifier(), *w.witnesses]))
        except NoteError as exc:
            raise UsageError(f"the cosignature does not verify: {exc}") from None
        signed = [v for v in w.witnesses if opened.signed_by(v) is not None]
        if len(signed) != 1:
            raise UsageError("the line is not a cosignature by one of this CAS's witnesses")
        root = self._tree.root(size)
        kept = w.keep(signed[0].name, size, root, line)
        # k witnesses on this tree: it is the checkpoint clients get from now on.
        names = {v.name for v in w.witnesses}
        lines = sorted(
            ln for name, n, r, ln in w.kept() if name in names and n == size and r == root
        )
        if len(lines) >= w.threshold:
            w.keep_counted(size, root, b"".join(lines))
        return kept

    def entries(self, start: int, count: int) -> list[bytes]:
        if start < 0 or not 1 <= count <= MAX_ENTRIES:
            raise UsageError(f"entries: start >= 0 and 1 <= count <= {MAX_ENTRIES}")
        size = self._tree.size()
        if start >= size:
            raise NotFoundError(f"the log has {size} entries; there is no entry {start}")
        return self._tree.entries(start, min(size, start + count))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise UsageError(f"an inclusion proof needs 0 <= index < size, not {index}, {size}")
        return self._tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise UsageError(f"a consistency proof needs 0 < from <= to, not {size1}, {size2}")
        return self._tree.consistency_proof(size1, size2)

    def tile(self, level: Level, index: int, width: int) -> bytes:
        """A tlog-tiles tile (or entry bundle), if the tree has all of it by now."""
        start = index * TILE_WIDTH
        size = self._tree.size()
        if level == ENTRIES:
            if start + width > size:
                raise NotFoundError(f"the log has {size} entries: no such entry bundle yet")
            return encode_bundle(self._tree.entries(start, start + width))
        if not isinstance(level, int):
            raise UsageError(f"no tile level {level!r}")
        if start + width > size >> (TILE_HEIGHT * level):
            raise NotFoundError(f"the log has {size} entries: no such tile yet")
        return b"".join(self._tree.store.read_hashes(level, start, start + width))

    def _check_size(self, size: int) -> None:
        current = self._tree.size()
        if not 0 < size <= current:
            raise NotFoundError(f"the log has {current} entries; size {size} is not a tree of it")


def _bundle(
    log: LogTree, tree: SubtreeHashes, note: bytes, wanted: list[int], since: int | None
) -> LogBundle:
    # Built from this log's own bytes, of the models' types: not validated again (an
    # answer's models are built on every provisioning).
    entries = [
        LogBundleEntry.model_construct(
            index=i, data=log.entry_in(tree, i), proof=inclusion_proof(tree, i)
        )
        for i in wanted
    ]
    extends = since is not None and 0 < since <= tree.size
    return LogBundle.model_construct(
        checkpoint=note.decode(),
        entries=entries,
        consistency_from=since if extends else None,
        consistency=consistency_proof(tree, since) if since and extends else [],
    )

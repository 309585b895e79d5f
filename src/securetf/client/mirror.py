"""A static mirror of a CAS's transparency log: the C2SP tlog-tiles directory (checkpoint,
tiles, entry bundles) that any static file server or CDN can serve.

:func:`mirror_log` copies what is new since the mirror's own checkpoint. The checkpoint
is verified with the pinned keys (and witnesses), must extend the mirror's previous one
(a mirror never goes back, nor follows a fork), and its root must be the root of the
tiles written; it is written last, so a reader never finds a checkpoint whose tiles are
missing. Clients trust a mirror no more than the CAS: they verify everything they read
(``securetf log ... --mirror URL``, ``CasClient(log_source=URL)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from securetf.client.caslog import CasLogClient
from securetf.errors import NotFoundError
from securetf.log import Checkpoint, ProofError, TileClient, WitnessPolicy, verify_checkpoint
from securetf.log._limits import HASH_SIZE, MAX_ENTRY_SIZE, MAX_NOTE_SIZE
from securetf.log._proofs import SubtreeHashes
from securetf.log._tiledir import CHECKPOINT_PATH, directory_fetch, write_file
from securetf.log._tilepath import ENTRIES, tile_path, tiles_for_size

__all__ = ["Mirrored", "mirror_log"]


@dataclass(frozen=True)
class Mirrored:
    previous: Checkpoint | None
    checkpoint: Checkpoint
    written: int  # files written (tiles, bundles, the checkpoint)


def mirror_log(log: CasLogClient, directory: Path) -> Mirrored:
    """Bring the mirror in ``directory`` up to the log's current checkpoint."""
    # 1. The log's checkpoint, verified with the pinned log key and witnesses.
    current = log.checkpoint()
    new = current.checkpoint
    # 2. The mirror's own checkpoint (only its log signature: it was checked when written).
    old = None
    mirrored = TileClient(directory_fetch(directory))
    try:
        note = mirrored.checkpoint()
    except NotFoundError:
        note = None
    if note is not None:
        alone = WitnessPolicy.unsafe_no_witnesses()
        old = verify_checkpoint(note, log.log_verifier, alone).checkpoint
    # 3. The tiles and bundles it lacks (the ones it has never change).
    written = 0
    for level, index, width in tiles_for_size(new.size):
        path = tile_path(level, index, width)
        if not (directory / path).exists():
            written += write_file(directory, path, log.fetch(path, width * HASH_SIZE))
        if level == 0:
            bundle = tile_path(ENTRIES, index, width)
            if not (directory / bundle).exists():
                data = log.fetch(bundle, width * (2 + MAX_ENTRY_SIZE))
                written += write_file(directory, bundle, data)
    # 4. The tiles hash to the checkpoint's root, and the new tree extends the old one
    #    (both read back from the directory: what a reader of the mirror will get).
    if SubtreeHashes(mirrored, new.size).root() != new.root:
        raise ProofError(f"the tiles from {log.where} do not hash to its checkpoint's root")
    if old is not None:
        mirrored.check_consistency(old, new)
    # 5. The checkpoint, last.
    if current.note != note:
        if len(current.note) > MAX_NOTE_SIZE:
            raise ProofError("the checkpoint is larger than a note may be")
        written += write_file(directory, CHECKPOINT_PATH, current.note)
    return Mirrored(old, new, written)

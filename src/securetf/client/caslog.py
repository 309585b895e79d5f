"""Reading a pinned CAS's transparency log: verified checkpoints, proven entries, and the
checkpoint kept from the last check, which the next must extend.

The log key comes from the pin (``securetf cas attest`` checked that the attested audit
key endorses it). The kept checkpoint is ``$SECURETF_HOME/cas-pins/<host>_<port>.checkpoint``
(the exact signed note, mode 0600), written only after the one it replaces was shown to be
a prefix of it. There are no witnesses yet (#14, later): a CAS that shows this client a
consistent history and others another one is not caught here.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securetf._fsutil import atomic_write
from securetf.attestation.sim_key import securetf_home
from securetf.client._httpx import httpx
from securetf.client.pins import CasPin, cas_file_stem, load_pin
from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    Checkpoint,
    Ed25519Verifier,
    ForkError,
    LogRollbackError,
    ProofError,
    TileClient,
    VerifiedCheckpoint,
    WitnessPolicy,
    leaf_hash,
    parse_vkey,
    verify_checkpoint,
    verify_inclusion,
)
from securetf.protocol.messages import LogEntries, LogProof

__all__ = ["CasLogClient", "ProvenEntry", "kept_checkpoint"]

TIMEOUT = 30.0
#: Largest response read from the log routes (a tile is 8 KiB, a bundle up to 16 MiB).
MAX_RESPONSE = 16 * 1024 * 1024 + 512


@dataclass(frozen=True)
class ProvenEntry:
    index: int
    data: bytes
    proof: list[bytes]

    def decoded(self) -> dict[str, Any]:
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise UsageError(f"log entry {self.index} is not a JSON object")
        return value


def _kept_path(url: str, home: Path | None) -> Path:
    return (home or securetf_home()) / "cas-pins" / f"{cas_file_stem(url)}.checkpoint"


def kept_checkpoint(url: str, home: Path | None = None) -> bytes | None:
    """The checkpoint note kept from the last ``verify`` of the CAS at ``url``."""
    try:
        return _kept_path(url, home).read_bytes()
    except FileNotFoundError:
        return None


class CasLogClient:
    """The transparency log of one pinned CAS, over HTTPS to its pinned certificate."""

    def __init__(self, pin: CasPin, *, home: Path | None = None, timeout: float = TIMEOUT):
        if pin.log_vkey is None:
            raise UsageError(
                f"the pin of {pin.url} has no log key (attested before the CAS had a log): "
                f"run 'securetf cas attest --cas {pin.url}' again"
            )
        self.pin = pin
        self._home = home
        self._verifier: Ed25519Verifier = parse_vkey(pin.log_vkey)
        ctx = ssl.create_default_context(cadata=pin.certificate_pem)
        self._http = httpx.Client(base_url=pin.url + "/v1/log/", verify=ctx, timeout=timeout)
        self.tiles = TileClient(self.fetch)

    @classmethod
    def for_url(cls, url: str) -> CasLogClient:
        return cls(load_pin(url))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CasLogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, path: str, limit: int) -> bytes:
        """GET ``/v1/log/<path>``, at most ``limit`` bytes (a :data:`securetf.log.Fetch`)."""
        try:
            with self._http.stream("GET", path) as response:
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > min(limit, MAX_RESPONSE):
                        raise UsageError(f"the CAS's log answer for {path} is too large")
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach the CAS at {self.pin.url}: {exc}") from exc
        if response.status_code == 404:
            raise NotFoundError(f"the CAS has no /v1/log/{path} (yet)")
        if response.status_code >= 400:
            raise UsageError(
                f"the CAS answered {response.status_code} for /v1/log/{path}: "
                f"{data[:300].decode(errors='replace')}"
            )
        return data

    def checkpoint(self) -> VerifiedCheckpoint:
        """The CAS's current checkpoint, verified with the pinned log key."""
        note = self.fetch("checkpoint", MAX_RESPONSE)
        # No witnesses yet: the log's own signature is all there is (it warns each time).
        return verify_checkpoint(note, self._verifier, WitnessPolicy.unsafe_no_witnesses())

    def entries(self, start: int, count: int, checkpoint: Checkpoint) -> list[ProvenEntry]:
        """Entries ``start``.. (at most ``count``), each proven to be in ``checkpoint``."""
        if not 0 <= start < checkpoint.size:
            raise UsageError(f"the log has {checkpoint.size} entries; there is no entry {start}")
        data = self.fetch(f"entries?start={start}&count={count}", MAX_RESPONSE)
        page = LogEntries.model_validate_json(data)
        if page.start != start:
            raise UsageError("the CAS answered entries from another index than asked")
        end = min(start + count, checkpoint.size)
        if len(page.entries) < end - start:
            raise UsageError("the CAS answered fewer entries than its checkpoint holds")
        got = zip(range(start, end), page.entries[: end - start], strict=True)
        return [self._prove(i, e, checkpoint) for i, e in got]

    def prove(self, index: int, checkpoint: Checkpoint) -> ProvenEntry:
        """Entry ``index`` and its inclusion proof, verified against ``checkpoint``."""
        [entry] = self.entries(index, 1, checkpoint)
        return entry

    def _prove(self, index: int, data: bytes, checkpoint: Checkpoint) -> ProvenEntry:
        query = f"proof/inclusion?index={index}&size={checkpoint.size}"
        proof = LogProof.model_validate_json(self.fetch(query, MAX_RESPONSE))
        verify_inclusion(leaf_hash(data), index, checkpoint.size, proof.hashes, checkpoint.root)
        return ProvenEntry(index, data, proof.hashes)

    def verify(self) -> tuple[Checkpoint | None, VerifiedCheckpoint]:
        """The current checkpoint, checked to extend the kept one (raises
        :class:`securetf.log.LogRollbackError` or :class:`securetf.log.ForkError` if not);
        then kept. Returns (the kept one before, the current one)."""
        # 1. The kept checkpoint, verified again: the file is only as good as its signature.
        kept_note = kept_checkpoint(self.pin.url, self._home)
        old = None
        if kept_note is not None:
            old = verify_checkpoint(
                kept_note, self._verifier, WitnessPolicy.unsafe_no_witnesses()
            ).checkpoint
        # 2. The current one, signed by the pinned log key.
        current = self.checkpoint()
        # 3. It extends the kept one: never smaller, same root at the same size, and a
        #    consistency proof (built from the CAS's tiles) between them.
        path = _kept_path(self.pin.url, self._home)
        if old is not None:
            _check_extends(self.tiles, old, current.checkpoint, path, self.pin.url)
        # 4. Keep it, only now.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, current.note, mode=0o600)
        return old, current


def _check_extends(
    tiles: TileClient, old: Checkpoint, new: Checkpoint, kept: Path, url: str
) -> None:
    evidence = f"keep {kept} and the CAS's current checkpoint as evidence"
    try:
        tiles.check_consistency(old, new)
    except LogRollbackError:
        raise LogRollbackError(
            f"the CAS at {url} shows a log of {new.size} entries, but it showed {old.size} "
            f"before: its log was rolled back (a restored database?); {evidence}"
        ) from None
    except ProofError as exc:
        # At the same size a different root; at a larger one no proof that it extends the
        # old tree: either way the CAS shows a history other than the one it showed.
        raise ForkError(
            f"the CAS at {url} shows a log of {new.size} entries that does not extend the "
            f"{old.size} it showed before ({exc}): its log forked; {evidence}"
        ) from None

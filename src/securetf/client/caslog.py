"""Reading a pinned CAS's transparency log: verified checkpoints, proven entries, and the
checkpoint kept from the last check, which the next must extend.

The log key comes from the pin (``securetf cas attest`` checked that the attested audit
key endorses it), and so do the witnesses whose cosignatures a checkpoint needs before it
counts (:attr:`CasPin.log_witnesses`, ``log_witness_threshold``). The kept checkpoint
(:mod:`securetf.client._kept`) is shared by the SDK, the CLI, the runtime and serving
clients of one home, replaced only after the one it holds was shown to be a prefix of the
new one, under a lock.

The log is read from the CAS (``/v1/log/``, over TLS to the pinned certificate) or from a
static mirror of its tlog-tiles (``source=``): everything fetched is checked against the
pinned keys, so a mirror is trusted exactly as far as the CAS.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securetf.client._httpx import httpx
from securetf.client._kept import KeptCheckpoint, kept_path
from securetf.client._logcheck import NotLoggedError, no_entry, require_entry
from securetf.client.pins import CasPin, load_pin
from securetf.crypto import Certificate, sha256
from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    Checkpoint,
    CosignatureVerifier,
    Ed25519Verifier,
    TileClient,
    VerifiedCheckpoint,
    WitnessPolicy,
    leaf_hash,
    parse_vkey,
    verify_checkpoint,
    verify_extension,
    verify_inclusion,
)
from securetf.protocol.messages import LogBundle, LogBundleEntry, LogEntries, LogProof

__all__ = ["CasLogClient", "ProvenEntry", "kept_checkpoint", "prove_identity", "witness_policy"]

TIMEOUT = 30.0
#: Largest response read from the log routes (a tile is 8 KiB, a bundle up to 16 MiB).
MAX_RESPONSE = 16 * 1024 * 1024 + 512
#: Full tiles remembered by one client (they never change): 8 KiB each.
MAX_CACHED_TILES = 256
#: Partial tiles remembered: the latest few. A partial tile never changes either (its
#: path names its width), but the next checkpoint's are others; one answer's proofs read
#: the same ones several times (a runtime's start: 7 reads of 2 tiles).
MAX_CACHED_PARTIAL_TILES = 8
#: How long a client waits for a checkpoint that covers an entry an answer names (with
#: witnesses, a new entry counts only once they cosigned a checkpoint that holds it).
LOG_WAIT = 30.0
_POLL = 0.2


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


def kept_checkpoint(pin: CasPin, home: Path | None = None) -> bytes | None:
    """The checkpoint note kept from the last ``verify`` of the pinned CAS's log."""
    return KeptCheckpoint(kept_path(pin, home), parse_vkey(pin.log_vkey or "")).read()


def witness_policy(pin: CasPin) -> WitnessPolicy:
    """The witnesses the pinned CAS requires (k of n), or the log's signature alone."""
    if not pin.log_witness_threshold:
        return WitnessPolicy.unsafe_no_witnesses()
    witnesses = []
    for vkey in pin.log_witnesses:
        verifier = parse_vkey(vkey)
        if not isinstance(verifier, CosignatureVerifier):
            raise UsageError(f"the pin of {pin.url} lists {vkey!r}, not a witness key")
        witnesses.append(verifier)
    return WitnessPolicy.of(witnesses, pin.log_witness_threshold)


class CasLogClient:
    """The transparency log of one pinned CAS, over HTTPS to its pinned certificate, or
    from a static mirror of its tiles at ``source``."""

    def __init__(
        self,
        pin: CasPin,
        *,
        home: Path | None = None,
        timeout: float = TIMEOUT,
        source: str | None = None,
        wait: float = LOG_WAIT,
        replicas: Sequence[CasPin] = (),
    ):
        if pin.log_vkey is None:
            raise UsageError(
                f"the pin of {pin.url} has no log key (attested before the CAS had a log): "
                f"run 'securetf cas attest --cas {pin.url}' again"
            )
        self.pin = pin
        self._home = home
        self._wait = wait
        self._verifier: Ed25519Verifier = parse_vkey(pin.log_vkey)
        self._kept = KeptCheckpoint(kept_path(pin, home, self._verifier.key_id), self._verifier)
        self._witnesses = witness_policy(pin)
        self.mirror = source
        self._timeout = timeout
        #: Where the log is read: the pinned CAS, then its replicas (one database, one log
        #: key) when it cannot be reached. The kept checkpoint is the pinned CAS's.
        self._pins = [pin, *(r for r in replicas if r.log_vkey == pin.log_vkey and r != pin)]
        self._at = 0
        if source is None:
            self._http = self._connect(pin)
        else:
            if not source.startswith(("https://", "http://")):
                raise UsageError(f"a log mirror is an http(s) URL, not {source!r}")
            self._http = httpx.Client(base_url=source.rstrip("/") + "/", timeout=timeout)
        self._tiles: dict[str, bytes] = {}
        self._partial: dict[str, bytes] = {}  # oldest first
        self.tiles = TileClient(self.fetch)
        #: The checkpoint the last :meth:`require` proved its entry in (or :meth:`adopt`
        #: verified).
        self.last: Checkpoint | None = None
        #: The entries (with proofs) an answer's bundle brought, and its checkpoint.
        self._bundled: tuple[Checkpoint, dict[int, LogBundleEntry]] | None = None

    @classmethod
    def for_url(cls, url: str, *, source: str | None = None) -> CasLogClient:
        return cls(load_pin(url), source=source)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CasLogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def log_verifier(self) -> Ed25519Verifier:
        """The pinned log key."""
        return self._verifier

    @property
    def where(self) -> str:
        return self.mirror or f"the CAS at {self._pins[self._at].url}"

    def _connect(self, pin: CasPin) -> httpx.Client:
        ctx = ssl.create_default_context(cadata=pin.certificate_pem)
        base = pin.url + "/v1/log/"
        return httpx.Client(base_url=base, verify=ctx, timeout=self._timeout)

    def _next_replica(self) -> bool:
        """Read from the next replica (after a transport error); False if none is left."""
        if self.mirror is not None or self._at + 1 >= len(self._pins):
            return False
        self._http.close()
        self._at += 1
        self._http = self._connect(self._pins[self._at])
        return True

    def fetch(self, path: str, limit: int) -> bytes:
        """GET ``<log>/<path>``, at most ``limit`` bytes (a :data:`securetf.log.Fetch`)."""
        cached = self._tiles.get(path, self._partial.get(path))
        if cached is not None:
            return cached
        while True:
            try:
                with self._http.stream("GET", path) as response:
                    data = b""
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > min(limit, MAX_RESPONSE):
                            raise UsageError(
                                f"the log's answer for {path} from {self.where} is too large"
                            )
                break
            except httpx.TransportError as exc:
                where = self.where
                if not self._next_replica():
                    raise UsageError(f"cannot reach {where}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise UsageError(f"cannot reach {self.where}: {exc}") from exc
        if response.status_code == 404:
            raise NotFoundError(f"{self.where} has no {path} (yet)")
        if response.status_code >= 400:
            raise UsageError(
                f"{self.where} answered {response.status_code} for {path}: "
                f"{data[:300].decode(errors='replace')}"
            )
        # A tile or bundle at a path never changes: what it claims is checked by every proof
        # against a checkpoint verified for it, cached or not.
        if path.startswith("tile/"):
            if ".p/" in path:
                self._partial[path] = data
                while len(self._partial) > MAX_CACHED_PARTIAL_TILES:
                    del self._partial[next(iter(self._partial))]
            elif len(self._tiles) < MAX_CACHED_TILES:
                self._tiles[path] = data
        return data

    def post(self, path: str, body: object) -> bytes:
        """POST JSON to ``<log>/<path>`` (a witness's cosignature); the answer's bytes."""
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach {self.where}: {exc}") from exc
        if response.status_code >= 400:
            raise UsageError(
                f"{self.where} refused {path} ({response.status_code}): {response.text[:300]}"
            )
        return response.content[:MAX_RESPONSE]

    def checkpoint(self) -> VerifiedCheckpoint:
        """The current checkpoint, verified with the pinned log key and, when the CAS
        requires witnesses, with k of their cosignatures."""
        return self._open(self.fetch("checkpoint", MAX_RESPONSE))

    def _open(self, note: bytes) -> VerifiedCheckpoint:
        return verify_checkpoint(note, self._verifier, self._witnesses)

    def entries(self, start: int, count: int, checkpoint: Checkpoint) -> list[ProvenEntry]:
        """Entries ``start``.. (at most ``count``), each proven to be in ``checkpoint``."""
        if not 0 <= start < checkpoint.size:
            raise UsageError(f"the log has {checkpoint.size} entries; there is no entry {start}")
        if self.mirror is not None:  # a mirror has tiles only
            end = min(start + count, checkpoint.size)
            return [self._from_tiles(i, checkpoint) for i in range(start, end)]
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

    def _from_tiles(self, index: int, checkpoint: Checkpoint) -> ProvenEntry:
        data = self.tiles.entry(index, checkpoint)  # proven inside
        return ProvenEntry(index, data, self.tiles.inclusion_proof(index, checkpoint.size))

    def verify(self) -> tuple[Checkpoint | None, VerifiedCheckpoint]:
        """The current checkpoint, checked to extend the kept one (raises
        :class:`securetf.log.LogRollbackError` or :class:`securetf.log.ForkError` if not);
        then kept. Returns (the kept one before, the current one)."""
        return self._kept.advance(self.checkpoint, self.tiles.check_consistency, self.where)

    def kept_size(self) -> int | None:
        """The size of the kept checkpoint, unverified (a hint for the CAS: the tree its
        consistency proof should start from; :meth:`adopt` verifies everything)."""
        return self._kept.size()

    def adopt(self, bundle: LogBundle) -> Checkpoint | None:
        """The checkpoint an answer's ``bundle`` brought, verified with the pinned keys and
        shown to extend the kept one (with the bundle's consistency proof if it starts at
        the kept size, else one built from the log's tiles), then kept; its entries and
        proofs serve the next :meth:`require` calls with ``at=`` this checkpoint.

        None if the kept checkpoint is larger than the bundle's (another process of this
        home kept a later one meanwhile, or the bundle is a replay): the caller proves the
        answer against the log's current checkpoint instead (:meth:`require` without
        ``at``), which also tells a rolled-back log from a late answer."""

        def extends(old: Checkpoint, new: Checkpoint) -> None:
            if new.size < old.size:
                raise _OlderError
            if bundle.consistency_from == old.size:
                verify_extension(old, new, lambda: bundle.consistency)
            else:
                self.tiles.check_consistency(old, new)

        self._bundled = None
        try:
            _, current = self._kept.advance(
                lambda: self._open(bundle.checkpoint.encode()), extends, self.where
            )
        except _OlderError:
            return None
        self._bundled = (current.checkpoint, {e.index: e for e in bundle.entries})
        self.last = current.checkpoint
        return current.checkpoint

    def require(
        self,
        what: str,
        index: int | None,
        expect: Mapping[str, object],
        *,
        at: Checkpoint | None = None,
    ) -> ProvenEntry:
        """Entry ``index``, proven to be in a checkpoint that extends the kept one (which
        it then replaces) and to record ``expect``; :class:`NotLoggedError` if the answer
        names no entry or another one, a :class:`ProofError` on a fork or a rollback.
        ``at``: a checkpoint this client verified for the same answer (one verification
        for an answer that names two entries)."""
        if index is None:
            raise NotLoggedError(no_entry(what))
        if at is not None and index < at.size:
            bundled = None
            if self._bundled is not None and self._bundled[0] == at:
                bundled = self._bundled[1].get(index)
            if bundled is not None:
                leaf = leaf_hash(bundled.data)
                verify_inclusion(leaf, index, at.size, bundled.proof, at.root)
                proven = ProvenEntry(index, bundled.data, bundled.proof)
            else:
                proven = self._from_tiles(index, at)
            require_entry(what, index, proven.data, expect)
            return proven
        # Without witnesses the CAS's checkpoint holds every entry it answers about.
        deadline = time.monotonic() + (self._wait if self.pin.log_witness_threshold else 0)
        missing = ""
        while True:
            try:
                _, current = self.verify()
            except NotFoundError as exc:  # no checkpoint cosigned by enough witnesses yet
                current, missing = None, f" ({exc})"
            if current is not None and index < current.checkpoint.size:
                break
            if time.monotonic() >= deadline:
                witnesses = (
                    f" cosigned by {self._witnesses.threshold} of its witnesses"
                    if self.pin.log_witness_threshold
                    else ""
                )
                shows = (
                    f"the log shows {current.checkpoint.size} entries"
                    if current is not None
                    else f"no checkpoint{missing}"
                )
                raise NotLoggedError(
                    f"the CAS's answer about {what} names log entry {index}, but no checkpoint"
                    f"{witnesses} holds it after {self._wait:g} s ({shows}): are the "
                    "witnesses running? Nothing was trusted; retry later"
                )
            time.sleep(_POLL)
        proven = self._from_tiles(index, current.checkpoint)
        require_entry(what, index, proven.data, expect)
        self.last = current.checkpoint
        return proven


class _OlderError(Exception):
    """An answer's checkpoint is older than the kept one (see :meth:`CasLogClient.adopt`)."""


def prove_identity(
    pin: CasPin, index: int | None, measurement: str, *, home: Path | None = None
) -> ProvenEntry:
    """The CAS's identity entry (its TLS key, audit key, log key, measurement), proven to be
    in its log at ``index``, the index its attested identity document names; raise if it
    is not, or if the log does not extend the checkpoint kept from this CAS before."""
    tls_key = Certificate.load(pin.certificate_pem.encode()).public_key_der()
    expect = {
        "type": "identity",
        "tls_public_key_sha256": sha256(tls_key).hex(),
        "audit_public_key": pin.audit_public_key,
        "log_vkey": pin.log_vkey,
        "measurement": measurement.removeprefix("sha256:"),
    }
    with CasLogClient(pin, home=home) as log:
        return log.require(f"the identity of the CAS at {pin.url}", index, expect)

"""The CAS's transparency log over HTTPS, from a real CAS process: signed checkpoints,
proofs and tlog-tiles that verify, bounded reads, and the CLI refusing a rolled-back or
forked log (#14 part 4, from the client's side)."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from securetf.cas import Cas
from securetf.cas.master_key import MasterKey
from securetf.cas.sealing import SimSealer
from securetf.cas.store import open_store
from securetf.client._logcheck import NotLoggedError
from securetf.client.caslog import CasLogClient
from securetf.client.pins import load_pin
from securetf.crypto import SigningKey, VerifyKey
from securetf.errors import AuthenticationError, IntegrityError, NotFoundError
from securetf.log import (
    Ed25519Signer,
    TileClient,
    WitnessPolicy,
    leaf_hash,
    parse_vkey,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from securetf.log._proofs import SubtreeHashes
from securetf.protocol.logkey import log_origin

from .server_support import CasProcess, attested_cas
from .support import DATASET, Owners, policy_yaml, signed

RAW = 300  # more than one full tile: full and partial tiles, two entry bundles


def _seed(data_dir: Path, count: int, tag: str, home: Path | None = None) -> None:
    """Append ``count`` entries to the log of the CAS database in ``data_dir`` (``home``:
    the CAS's, once it has sealed its master key to that home's sim platform key)."""
    master = (
        MasterKey.load_or_create(data_dir)
        if home is None
        else MasterKey.load_existing(data_dir, SimSealer(home))
    )
    store = open_store(
        f"sqlite:///{data_dir / 'cas.db'}",
        master_key=master,
        audit_key=SigningKey.generate(),
    )
    try:
        with store.transaction() as tx:
            for i in range(count):
                tx.append_log(json.dumps({"type": "test", "tag": tag, "i": i}).encode())
    finally:
        store.close()


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[CasProcess]:
    data = tmp_path / "cas"
    data.mkdir(mode=0o700)
    # A real decision first (a policy in force), then filler entries, all before the CAS
    # starts on the same database.
    store = open_store(
        f"sqlite:///{data / 'cas.db'}",
        master_key=MasterKey.load_or_create(data),
        audit_key=SigningKey.generate(),
    )
    owners = Owners()
    yaml = policy_yaml(owners)
    Cas(store, clock=time.time).apply_policy(
        yaml, [signed(owners.alice, yaml, time.time(), secrets=DATASET)], DATASET
    )
    store.close()
    _seed(data, RAW, "first")
    with attested_cas(tmp_path) as proc:
        yield proc


def _http(cas: CasProcess) -> httpx.Client:
    pin = load_pin(cas.url, home=cas.home)
    ctx = ssl.create_default_context(cadata=pin.certificate_pem)
    return httpx.Client(base_url=cas.url + "/v1/log", verify=ctx, timeout=30)


def test_checkpoint_proofs_and_tiles_verify_against_the_pinned_log_key(cas: CasProcess) -> None:
    pin = load_pin(cas.url, home=cas.home)
    assert pin.log_vkey is not None
    log_key = parse_vkey(pin.log_vkey)
    assert log_key.name == log_origin(VerifyKey.from_text(pin.audit_public_key))
    size = RAW + 2  # the policy, the filler, the CAS's identity at its first start
    with _http(cas) as http:
        note = http.get("/checkpoint").content
        checkpoint = verify_checkpoint(
            note, log_key, WitnessPolicy.unsafe_no_witnesses()
        ).checkpoint
        assert checkpoint.size == size
        # Another key does not verify it.
        other = SigningKey.generate()
        with pytest.raises(AuthenticationError):
            verify_checkpoint(
                note,
                Ed25519Signer(log_key.name, other).verifier(),
                WitnessPolicy.unsafe_no_witnesses(),
            )
        first = http.get("/entries", params={"start": 0, "count": 256}).json()
        rest = http.get("/entries", params={"start": 256}).json()
        entries = [base64.b64decode(e) for e in first["entries"] + rest["entries"]]
        assert len(entries) == size
        assert json.loads(entries[0])["type"] == "policy"
        identity = json.loads(entries[-1])
        assert identity["type"] == "identity"
        assert identity["log_vkey"] == pin.log_vkey
        assert identity["audit_public_key"] == pin.audit_public_key
        assert identity["tee"] == "sim"
        tiles = TileClient(lambda path, limit: _get(http, path, limit))
        for index in (0, 1, 255, 256, size - 1):
            proof = http.get("/proof/inclusion", params={"index": index, "size": size}).json()
            hashes = [base64.b64decode(h) for h in proof["hashes"]]
            verify_inclusion(leaf_hash(entries[index]), index, size, hashes, checkpoint.root)
            # The same proof from the tiles, as a static mirror would serve them.
            assert tiles.inclusion_proof(index, size) == hashes
            assert tiles.entry(index, checkpoint) == entries[index]
        for old in (1, 200, 256, 257):
            proof = http.get("/proof/consistency", params={"from": old, "to": size}).json()
            hashes = [base64.b64decode(h) for h in proof["hashes"]]
            assert tiles.consistency_proof(old, size) == hashes
            verify_consistency(old, size, hashes, tiles_root(tiles, old), checkpoint.root)
        # Bounded, with clear refusals.
        assert http.get("/entries", params={"start": 0, "count": 257}).status_code == 400
        assert http.get("/entries", params={"start": size}).status_code == 404
        proof = "/proof/inclusion"
        assert http.get(proof, params={"index": size, "size": size}).status_code == 400
        assert http.get(proof, params={"index": 0, "size": size + 1}).status_code == 404
        assert http.get("/proof/consistency", params={"from": 0, "to": 2}).status_code == 400
        assert http.get("/proof/consistency", params={"from": 3, "to": 2}).status_code == 400
        assert http.get("/tile/0/001.p/200").status_code == 404  # not in the tree yet
        assert http.get("/tile/0/1").status_code == 404  # not a canonical tile path
        assert http.get("/tile/0/0001").status_code == 404
        full = http.get("/tile/0/000")
        assert full.status_code == 200
        assert len(full.content) == 256 * 32
        assert "immutable" in full.headers["cache-control"]


def tiles_root(tiles: TileClient, size: int) -> bytes:
    return SubtreeHashes(tiles, size).root()


def _get(http: httpx.Client, path: str, limit: int) -> bytes:
    response = http.get("/" + path)
    if response.status_code == 404:
        raise NotFoundError(path)
    response.raise_for_status()
    assert len(response.content) <= limit
    return response.content


def test_the_cli_reads_and_proves_entries(cas: CasProcess) -> None:
    shown = json.loads(cas.cli("log", "checkpoint", "--cas", cas.url, "--json").stdout)
    assert shown["size"] == RAW + 2
    assert shown["origin"].startswith("securetf.cas/")
    listed = json.loads(
        cas.cli("log", "entries", "--cas", cas.url, "--count", "2", "--json").stdout
    )
    assert [e["entry"]["type"] for e in listed["entries"]] == ["policy", "test"]
    assert listed["entries"][0]["entry"]["name"] == "cancer"
    proved = json.loads(cas.cli("log", "prove", "257", "--cas", cas.url, "--json").stdout)
    assert proved["index"] == 257
    assert proved["entry"]["i"] == 256
    assert proved["proof"]  # verified by the CLI against the checkpoint
    refused = cas.cli("log", "prove", str(RAW + 2), "--cas", cas.url, ok=False)
    assert refused.returncode == 2


@pytest.mark.slow
def test_the_cli_refuses_a_rolled_back_or_forked_log(cas: CasProcess) -> None:
    data = cas.data
    first = cas.cli("log", "verify", "--cas", cas.url)
    # `cas attest` kept the first checkpoint (proving the identity entry in it).
    assert "log ok: 302 -> 302 entries" in first.stdout
    # A copy of the database as it is now (stopped, so the WAL is folded in).
    cas.stop()
    backup = data.parent / "backup"
    backup.mkdir()
    for f in data.glob("cas.db*"):
        shutil.copy2(f, backup / f.name)
    cas.start()  # the same identity: logged once, not again
    _seed(data, 5, "later", cas.home)
    later = cas.cli("log", "verify", "--cas", cas.url)
    assert "log ok: 302 -> 307 entries" in later.stdout
    # The operator restores the older database: the CLI that saw 307 refuses 302.
    cas.stop()
    for f in data.glob("cas.db*"):
        f.unlink()
    for f in backup.glob("cas.db*"):
        shutil.copy2(f, data / f.name)
    cas.start()
    rolled = cas.cli("log", "verify", "--cas", cas.url, ok=False)
    assert rolled.returncode == IntegrityError.exit_code
    assert "rolled back" in rolled.stderr
    # ... and the same size again, with other entries: a fork.
    _seed(data, 5, "other", cas.home)
    forked = cas.cli("log", "verify", "--cas", cas.url, ok=False)
    assert forked.returncode == IntegrityError.exit_code
    assert "forked" in forked.stderr
    # Nothing was kept from the refused checks.
    with CasLogClient(load_pin(cas.url, home=cas.home), home=cas.home) as log:
        assert log.checkpoint().checkpoint.size == 307
    kept = cas.home / "cas-pins"
    assert b"\n307\n" in next(kept.glob("*.checkpoint")).read_bytes()


def test_one_answers_proofs_read_each_tile_once(cas: CasProcess) -> None:
    """Proving two entries of one answer against one checkpoint reads the checkpoint once
    and each tile once, partial tiles too (they never change: their path names their
    width); the proofs are checked all the same."""
    read: list[str] = []
    with CasLogClient(load_pin(cas.url, home=cas.home), home=cas.home) as log:
        log._http.event_hooks["request"].append(lambda request: read.append(request.url.path))
        last = RAW  # the last filler entry, in the partial tile after the first full one
        log.require("a filler", last, {"type": "test", "tag": "first", "i": RAW - 1})
        assert log.last is not None
        log.require("the policy", 0, {"type": "policy"}, at=log.last)
        log.require("a filler", last - 1, {"type": "test", "i": RAW - 2}, at=log.last)
        with pytest.raises(NotLoggedError):
            log.require("a filler", last, {"type": "test", "i": 0}, at=log.last)
    assert read.count("/v1/log/checkpoint") == 1
    tiles = [p for p in read if "/tile/" in p]
    assert any(".p/" in p for p in tiles)
    assert len(tiles) == len(set(tiles)), tiles

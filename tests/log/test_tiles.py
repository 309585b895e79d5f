"""tlog-tiles: the path encoding and the tile set (the spec's own examples), bundles, and
a log written as files, served over HTTP, read back into proofs that verify."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.crypto import SigningKey
from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    Fetch,
    ForkError,
    LogRollbackError,
    LogTree,
    MemoryStore,
    ProofError,
    TileClient,
    WitnessPolicy,
    decode_bundle,
    directory_fetch,
    encode_bundle,
    leaf_hash,
    parse_tile_path,
    sign_note,
    signature_line,
    tile_path,
    tiles_for_size,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    write_tiles,
)
from securetf.log._limits import MAX_ENTRY_SIZE

ORIGIN = "cas.example/log"
LOG = Ed25519Signer(ORIGIN, SigningKey.from_seed(bytes(range(32))))
WITNESS = CosignatureSigner(
    "witness.example/w1", SigningKey.from_seed(bytes(32)), clock=lambda: 1e9
)
POLICY = WitnessPolicy.of([WITNESS.verifier()], 1)


def test_spec_index_encoding() -> None:
    # tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(3, 0, 5) == "tile/3/000.p/5"
    assert tile_path("entries", 1000, 17) == "tile/entries/x001/000.p/17"
    assert parse_tile_path("tile/0/x001/x234/067") == (0, 1234067, 256)
    assert parse_tile_path("tile/entries/x001/000.p/17") == ("entries", 1000, 17)


def test_spec_tile_sets() -> None:
    # tlog-tiles: 70,000 leaves are 273 full level-0 tiles, a partial one of width 112, a
    # full level-1 tile, a partial one of width 17 and a partial level-2 tile of width 1;
    # 256 leaves are a full level-0 tile and a partial level-1 tile of width 1.
    tiles = list(tiles_for_size(70_000))
    assert sum(1 for t in tiles if t[0] == 0 and t[2] == 256) == 273
    assert [t for t in tiles if t[2] != 256 or t[0] > 0] == [
        (0, 273, 112),
        (1, 0, 256),
        (1, 1, 17),
        (2, 0, 1),
    ]
    assert list(tiles_for_size(256)) == [(0, 0, 256), (1, 0, 1)]
    assert list(tiles_for_size(0)) == []


@given(st.sampled_from([0, 1, 5, 63, "entries"]), st.integers(0, 10**15), st.integers(1, 256))
def test_paths_round_trip(level: int | str, index: int, width: int) -> None:
    path = tile_path(level, index, width)  # type: ignore[arg-type]
    assert parse_tile_path(path) == (level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/001",  # a leading zero group
        "tile/00/000",
        "tile/64/000",
        "tile/0/1/000",
        "tile/0/x001",
        "tile/0/001/002",
        "tile/0/0001",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/05",
        "tile/0/000.p",
        "tile/0/../000",
        "tile/0/000/",
        "tile//000",
        "tile/0/\u0660\u0660\u0660",
        "tile/data/000",
        "/etc/passwd",
        "tile/0/x1000/000",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(UsageError):
        parse_tile_path(path)


def test_bundles() -> None:
    entries = [b"", b"a", b"x" * MAX_ENTRY_SIZE]
    data = encode_bundle(entries)
    assert data[:3] == b"\x00\x00\x00"
    assert decode_bundle(data, 3) == entries
    for bad, width in ((data[:-1], 3), (data + b"\x00", 3), (data, 2), (data, 4)):
        with pytest.raises(ProofError):
            decode_bundle(bad, width)
    with pytest.raises(UsageError):
        encode_bundle([b"x" * (MAX_ENTRY_SIZE + 1)])


def _signed(tree: LogTree, size: int) -> bytes:
    """The log's checkpoint, cosigned by its witness."""
    text = Checkpoint(ORIGIN, size, tree.root(size)).text()
    return sign_note(text, [LOG]) + signature_line(WITNESS, text)


def _entry(i: int) -> bytes:
    return b"policy update %d" % i


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[LogTree, Path, str]]:
    """A log of 1300 entries, written as tiles at sizes 700 and 1300, served over HTTP."""
    tree = LogTree(MemoryStore())
    tree.extend([_entry(i) for i in range(700)])
    write_tiles(tree, 700, tmp_path, _signed(tree, 700))
    tree.extend([_entry(i) for i in range(700, 1300)])
    write_tiles(tree, 1300, tmp_path, _signed(tree, 1300))
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield tree, tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _http_fetch(client: httpx.Client, base: str) -> Fetch:
    def fetch(path: str, limit: int) -> bytes:
        with client.stream("GET", f"{base}/{path}") as response:
            if response.status_code == 404:
                raise NotFoundError(path)
            response.raise_for_status()
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise ProofError(f"{path} is larger than {limit} bytes")
            return data

    return fetch


def test_proofs_from_an_http_mirror_verify_against_the_checkpoint(
    mirror: tuple[LogTree, Path, str],
) -> None:
    tree, _, base = mirror
    with httpx.Client(timeout=10) as http:
        client = TileClient(_http_fetch(http, base))
        new = verify_checkpoint(client.checkpoint(), LOG.verifier(), POLICY).checkpoint
        assert new.size == 1300
        # An inclusion proof, from tiles only.
        proof = client.inclusion_proof(1000, new.size)
        assert proof == tree.inclusion_proof(1000, 1300)
        verify_inclusion(leaf_hash(_entry(1000)), 1000, new.size, proof, new.root)
        # A consistency proof from the checkpoint a client kept at 700 (its partial
        # tiles are still served).
        old = Checkpoint(ORIGIN, 700, tree.root(700))
        proof = client.consistency_proof(old.size, new.size)
        assert proof == tree.consistency_proof(700, 1300)
        verify_consistency(old.size, new.size, proof, old.root, new.root)
        client.check_consistency(old, new)
        # An entry, proven in the tree.
        assert client.entry(1299, new) == _entry(1299)
        assert client.entry(3, new) == _entry(3)


def test_a_directory_mirror_gives_the_same_proofs(mirror: tuple[LogTree, Path, str]) -> None:
    tree, root, _ = mirror
    client = TileClient(directory_fetch(root))
    for size in (1, 255, 256, 257, 700, 1299, 1300):
        assert client.inclusion_proof(size - 1, 1300) == tree.inclusion_proof(size - 1, 1300)
        assert client.consistency_proof(size, 1300) == tree.consistency_proof(size, 1300)


def test_a_missing_partial_tile_falls_back_to_the_full_one(
    mirror: tuple[LogTree, Path, str],
) -> None:
    tree, root, _ = mirror
    # At size 700 the edge tile 0/2 has width 188; the log may delete it once full.
    (root / tile_path(0, 2, 188)).unlink()
    (root / tile_path("entries", 2, 188)).unlink()
    tree.extend([_entry(i) for i in range(1300, 1400)])  # fills nothing new
    client = TileClient(directory_fetch(root))
    old = Checkpoint(ORIGIN, 700, tree.root(700))
    new = Checkpoint(ORIGIN, 1300, tree.root(1300))
    client.check_consistency(old, new)
    # tile 0/2 is full at 1300, so the fallback read its first 188 hashes
    assert client.entry(690, old) == _entry(690)


def test_a_tampered_tile_is_caught(mirror: tuple[LogTree, Path, str]) -> None:
    tree, root, _ = mirror
    target = root / tile_path(0, 3)
    data = bytearray(target.read_bytes())
    data[5] ^= 1
    target.write_bytes(bytes(data))
    client = TileClient(directory_fetch(root))
    new = Checkpoint(ORIGIN, 1300, tree.root(1300))
    with pytest.raises(ProofError):
        client.entry(1000, new)  # a neighbour's hash is part of the proof
    with pytest.raises(ProofError):
        client.check_consistency(Checkpoint(ORIGIN, 1000, tree.root(1000)), new)
    (root / tile_path(0, 5, 20)).write_bytes(b"short")
    with pytest.raises(ProofError, match="not 20 hashes"):
        client.inclusion_proof(1290, 1300)


def test_a_tampered_entry_is_caught(mirror: tuple[LogTree, Path, str]) -> None:
    tree, root, _ = mirror
    target = root / tile_path("entries", 1)
    target.write_bytes(target.read_bytes().replace(b"update 300", b"update 999"))
    with pytest.raises(ProofError):
        TileClient(directory_fetch(root)).entry(300, Checkpoint(ORIGIN, 1300, tree.root(1300)))


def test_forks_and_rollbacks_are_named(mirror: tuple[LogTree, Path, str]) -> None:
    tree, root, _ = mirror
    client = TileClient(directory_fetch(root))
    new = Checkpoint(ORIGIN, 1300, tree.root(1300))
    with pytest.raises(ForkError):
        client.check_consistency(Checkpoint(ORIGIN, 1300, leaf_hash(b"other")), new)
    with pytest.raises(LogRollbackError):
        client.check_consistency(new, Checkpoint(ORIGIN, 700, tree.root(700)))
    with pytest.raises(ProofError):
        client.check_consistency(Checkpoint(ORIGIN, 0, leaf_hash(b"x")), new)
    with pytest.raises(UsageError):
        client.check_consistency(Checkpoint("other.example/log", 1, new.root), new)


def test_the_directory_fetch_reads_only_tiles_and_within_limits(
    mirror: tuple[LogTree, Path, str],
) -> None:
    _, root, _ = mirror
    fetch = directory_fetch(root)
    with pytest.raises(UsageError):
        fetch("../../etc/passwd", 100)
    with pytest.raises(NotFoundError):
        fetch(tile_path(5, 0), 100)
    with pytest.raises(ProofError, match="larger"):
        fetch(tile_path(0, 0), 100)


def test_rewriting_keeps_the_immutable_files(tmp_path: Path) -> None:
    tree = LogTree(MemoryStore())
    tree.extend([_entry(i) for i in range(600)])
    first = write_tiles(tree, 600, tmp_path, _signed(tree, 600))
    assert first == len(list(tiles_for_size(600))) + 3 + 1  # tiles, 3 bundles, checkpoint
    assert write_tiles(tree, 600, tmp_path, _signed(tree, 600)) == 1  # the checkpoint only

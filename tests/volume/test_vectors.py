"""The committed test vector, read by the library and by an independent reader of the spec."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securetf.volume import Volume, VolumeKey

VECTOR = Path(__file__).resolve().parents[2] / "docs" / "test-vectors" / "volume-v1"
EXPECTED = json.loads((VECTOR / "expected.json").read_text())


def test_library_reads_the_vector(tmp_path: Path) -> None:
    key = VolumeKey(bytes.fromhex(EXPECTED["key_hex"]))
    copy = tmp_path / "v"
    shutil.copytree(VECTOR / "sealed", copy)
    with Volume.open(copy, key, expect_tag=EXPECTED["tag"]) as vol:
        report = vol.verify()
        assert report.version == EXPECTED["version"]
        assert vol.directories() == EXPECTED["dirs"]
        for path, want in EXPECTED["files"].items():
            data = vol.open_file(path).read()
            assert len(data) == want["size"]
            assert hashlib.sha256(data).hexdigest() == want["sha256"]


# --- an independent reader, written from docs/volume-format.md alone -------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _padme(n: int) -> int:
    n = max(n, 256)
    e = n.bit_length() - 1
    mask = (1 << (e - e.bit_length())) - 1
    return (n + mask) & ~mask


def _spec_read(root: Path, k: bytes) -> tuple[str, dict[str, bytes]]:
    raw = (root / "securetf-volume").read_bytes()
    magic, c, vid, version, m_salt, check, sealed_len = struct.unpack(">8sI16sQ32s32sI", raw[:104])
    assert magic == b"STFVOL\x00\x01"
    assert version == EXPECTED["version"]
    assert sealed_len == len(raw) - 104
    assert check == _hkdf(k, vid, b"securetf/v1 key-check")
    mkey = _hkdf(k, m_salt, b"securetf/v1 manifest" + vid)
    body = json.loads(AESGCM(mkey).decrypt(bytes(12), raw[104:], raw[:104]))
    files = {}
    for f in body["files"]:
        oid, salt = bytes.fromhex(f["object"]), bytes.fromhex(f["salt"])
        fkey = AESGCM(_hkdf(k, salt, b"securetf/v1 file" + vid + oid))
        blob = (root / "objects" / f["object"][:2] / f["object"][2:]).read_bytes()
        padded = _padme(f["size"])
        n = max(1, -(-padded // c))
        assert len(blob) == padded + 16 * n
        plain, tags = b"", b""
        for i in range(n):
            clen = min(c, padded - i * c)
            rec = blob[i * (c + 16) : i * (c + 16) + clen + 16]
            aad = b"securetf/v1 chunk" + vid + oid + struct.pack(">QB", i, i == n - 1)
            plain += fkey.decrypt(i.to_bytes(12, "big"), rec, aad)
            tags += rec[-16:]
        assert hashlib.sha256(b"securetf/v1 root" + tags).hexdigest() == f["root"]
        assert plain[f["size"] :] == bytes(padded - f["size"])
        files[f["path"]] = plain[: f["size"]]
    return "sha256:" + hashlib.sha256(raw).hexdigest(), files


def test_independent_reader_agrees_with_the_spec() -> None:
    tag, files = _spec_read(VECTOR / "sealed", bytes.fromhex(EXPECTED["key_hex"]))
    assert tag == EXPECTED["tag"]
    assert files["hello.txt"] == b"hello, securetf\n"
    assert files["dir/sub/pattern.bin"] == bytes(i % 251 for i in range(10000))
    assert files["dir/empty.txt"] == b""
    assert set(files) == set(EXPECTED["files"])

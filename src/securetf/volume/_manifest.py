"""The manifest: the authenticated, versioned list of a volume's files.

Layout (big-endian), see docs/volume-format.md:
``magic(8) chunk_size(u32) volume_id(16) version(u64) salt(32) key_check(32) body_len(u32)``
then ``AES-256-GCM(manifest_key, nonce=0, aad=header)`` of the padded JSON body.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from securetf.crypto import constant_time_equal, random_bytes, sha256
from securetf.errors import AuthenticationError, IntegrityError, UsageError
from securetf.volume import _paths
from securetf.volume._keys import VolumeKey
from securetf.volume._objects import OBJECT_ID_SIZE, SALT_SIZE, FileEntry
from securetf.volume._padding import padded_size
from securetf.volume._settings import (
    MAX_CHUNK_SIZE,
    MAX_MANIFEST_BYTES,
    MIN_CHUNK_SIZE,
    MODE_BITS,
)

MAGIC = b"STFVOL\x00\x01"
HEADER = struct.Struct(">8sI16sQ32s32sI")
_ZERO_NONCE = bytes(12)
_HEX = re.compile(r"\A[0-9a-f]*\Z")
_BODY_KEYS = {"dirs", "files"}
_ENTRY_KEYS = {"path", "object", "salt", "size", "mode", "root"}


@dataclass(frozen=True)
class Manifest:
    """One verified state of a volume."""

    volume_id: bytes
    chunk_size: int
    version: int
    files: Mapping[str, FileEntry] = field(default_factory=dict)
    dirs: frozenset[str] = frozenset()


def tag_of(manifest_bytes: bytes) -> str:
    """The tag: a digest that names this exact state of the volume."""
    return "sha256:" + sha256(manifest_bytes).hex()


def encode(manifest: Manifest, key: VolumeKey, *, salt: bytes | None = None) -> bytes:
    """Serialize and encrypt ``manifest``. ``salt`` is random unless a test vector fixes it."""
    salt = random_bytes(32) if salt is None else salt
    dirs, paths = sorted(manifest.dirs), sorted(manifest.files)
    _paths.check_tree(paths, dirs)  # never write what a reader must refuse
    body = json.dumps(
        {"dirs": dirs, "files": [_entry_to_json(manifest.files[p]) for p in paths]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    body += b" " * (padded_size(len(body)) - len(body))
    sealed_len = len(body) + 16
    header = HEADER.pack(
        MAGIC,
        manifest.chunk_size,
        manifest.volume_id,
        manifest.version,
        salt,
        key.key_check(manifest.volume_id),
        sealed_len,
    )
    return header + key.manifest_cipher(manifest.volume_id, salt).seal(_ZERO_NONCE, body, header)


def decode(data: bytes, key: VolumeKey) -> Manifest:
    """Authenticate and parse manifest bytes.

    Raises :class:`UsageError` for something that is not a manifest at all,
    :class:`AuthenticationError` for a wrong key, :class:`IntegrityError` for anything else.
    """
    # 1. Framing: the header is public; anything malformed past the magic is tampering.
    if len(data) < HEADER.size or data[:8] != MAGIC:
        raise UsageError("not a securetf volume manifest (bad magic)")
    if len(data) > MAX_MANIFEST_BYTES:
        raise IntegrityError()
    _, chunk_size, volume_id, version, salt, check, sealed_len = HEADER.unpack_from(data)
    if sealed_len != len(data) - HEADER.size or sealed_len < 16:
        raise IntegrityError()
    # 2. Key check: a wrong key is told apart from a damaged manifest.
    if not constant_time_equal(check, key.key_check(volume_id)):
        raise AuthenticationError(
            "wrong key for this volume (its key check does not match, or the manifest "
            "header was altered); use the key file the volume was sealed with"
        )
    # 3. Authenticate the body, bound to the exact header bytes.
    header = data[: HEADER.size]
    body = key.manifest_cipher(volume_id, salt).open(_ZERO_NONCE, data[HEADER.size :], header)
    # 4. Parse the now-authentic body strictly.
    if not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE) or version < 1:
        raise IntegrityError()
    try:
        files, dirs = _parse_body(body)
    except (ValueError, KeyError, TypeError, UsageError):
        raise IntegrityError() from None
    return Manifest(volume_id, chunk_size, version, {f.path: f for f in files}, frozenset(dirs))


def _parse_body(body: bytes) -> tuple[list[FileEntry], list[str]]:
    """The files and directories of a padded JSON body, exactly as :func:`encode` writes
    it, describing a tree that a directory could hold; raise anything else."""
    text = body.rstrip(b" ")
    if len(body) != padded_size(len(text)) or not text.endswith(b"}"):
        raise ValueError("body is not one JSON object padded with spaces")
    obj = json.loads(text, object_pairs_hook=_unique_keys)
    if set(obj) != _BODY_KEYS or not all(isinstance(obj[k], list) for k in _BODY_KEYS):
        raise ValueError("not a manifest body")
    files = [_entry_from_json(e) for e in obj["files"]]
    dirs = [_exact_path(d) for d in obj["dirs"]]
    _paths.check_tree([f.path for f in files], dirs)
    if len({f.object_id for f in files}) != len(files):
        raise ValueError("two files share an object")
    return files, dirs


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _entry_to_json(e: FileEntry) -> dict[str, Any]:
    return {
        "path": e.path,
        "object": e.object_id.hex(),
        "salt": e.salt.hex(),
        "size": e.size,
        "mode": e.mode,
        "root": e.root.hex(),
    }


def _exact_path(value: object) -> str:
    if not isinstance(value, str) or _paths.normalize(value) != value:
        raise ValueError("path not in normal form")
    return value


def _hex(value: object, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.match(value):
        raise ValueError("bad hex field")
    return bytes.fromhex(value)


def _entry_from_json(obj: Any) -> FileEntry:
    if not isinstance(obj, dict) or set(obj) != _ENTRY_KEYS:
        raise ValueError("not a file entry")
    size, mode = obj["size"], obj["mode"]
    if type(size) is not int or size < 0 or type(mode) is not int or not 0 <= mode <= 0o7777:
        raise ValueError("bad size or mode")
    return FileEntry(
        path=_exact_path(obj["path"]),
        object_id=_hex(obj["object"], OBJECT_ID_SIZE),
        salt=_hex(obj["salt"], SALT_SIZE),
        size=size,
        mode=mode & MODE_BITS,  # older writers kept 0o7777; special bits are never applied
        root=_hex(obj["root"], 32),
    )

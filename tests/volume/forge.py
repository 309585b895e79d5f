"""Forging manifests as a key holder could: authentic, but with any body it likes.

Built from docs/volume-format.md and the key's derivations only, so it forges whatever
the reader might be too trusting about (the library's own ``encode`` refuses bad trees).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securetf.volume import VolumeKey
from securetf.volume._manifest import HEADER, MAGIC
from securetf.volume._padding import padded_size

Body = dict[str, Any]


def _padded(body: Body) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return text + b" " * (padded_size(len(text)) - len(text))


def forge(
    data: bytes,
    key: VolumeKey,
    change: Callable[[Body], None],
    *,
    raw: Callable[[bytes], bytes] = lambda plain: plain,
) -> bytes:
    """Decrypt manifest ``data``, let ``change`` edit its JSON (and ``raw`` its padded
    bytes), and seal the result again under a fresh salt, as the writer would."""
    header = data[: HEADER.size]
    _, chunk_size, volume_id, version, salt, check, _ = HEADER.unpack(header)
    body = json.loads(
        key.manifest_cipher(volume_id, salt).open(bytes(12), data[HEADER.size :], header)
    )
    change(body)
    plain = raw(_padded(body))
    salt = os.urandom(32)
    header = HEADER.pack(MAGIC, chunk_size, volume_id, version, salt, check, len(plain) + 16)
    return header + key.manifest_cipher(volume_id, salt).seal(bytes(12), plain, header)


def forge_volume(vol_dir: Path, key: VolumeKey, change: Callable[[Body], None]) -> None:
    """Replace the manifest of the volume at ``vol_dir`` with a forged one."""
    manifest = vol_dir / "securetf-volume"
    manifest.write_bytes(forge(manifest.read_bytes(), key, change))

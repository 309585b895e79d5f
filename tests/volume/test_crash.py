"""kill -9 at any moment of a commit leaves the old or the new state, and both verify."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from securetf.volume import Volume, VolumeKey

_WRITER = """
import os, sys
from pathlib import Path
from securetf.volume import Volume, VolumeKey
key = VolumeKey(bytes(range(32)))
path = Path(sys.argv[1])
while True:
    with Volume.open(path, key, writable=True) as vol:
        n = vol.version + 1
        for name in ("a.bin", "b.bin"):
            with vol.open_file(name, "wb") as f:
                f.write(n.to_bytes(4, "big") * (1000 * n % 40000 + 1))
        with vol.open_file("grow.bin", "ab") as f:
            f.write(os.urandom(5000))
        vol.commit()
        print(n, flush=True)
"""


@pytest.mark.parametrize("seed", range(6))
def test_kill_9_during_commits(tmp_path: Path, seed: int) -> None:
    key = VolumeKey(bytes(range(32)))
    vol_dir = tmp_path / "vol"
    with Volume.create(vol_dir, key, chunk_size=4096) as vol:
        vol.commit()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(vol_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # at least one commit happened
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    proc.kill()
    proc.wait()
    with Volume.open(vol_dir, key) as vol:
        report = vol.verify()
        n = vol.version
        for name in ("a.bin", "b.bin"):
            data = vol.open_file(name).read()
            assert data == n.to_bytes(4, "big") * (1000 * n % 40000 + 1)
    assert report.version == n >= 2
    # The next writer works and cleans up whatever the killed one left.
    with Volume.open(vol_dir, key, writable=True) as vol:
        with vol.open_file("a.bin", "wb") as f:
            f.write(b"after")
        vol.commit()
        vol.verify()
        live = {vol._store.object_path(e.object_id) for e in vol._files.values()}
    assert {p for p in (vol_dir / "objects").rglob("*") if p.is_file()} == live

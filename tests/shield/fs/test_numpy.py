"""numpy (and pandas, when installed) work through the mount as on disk.

They run in a child process, as the program does under the runtime: a process must not
page-fault on a memory map of a mount that its own thread serves (the fault holds the GIL).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from securetf.shield.fs import Mount

pytest.importorskip("numpy")

_NUMPY = """
import sys
from pathlib import Path
import numpy as np
root, raw = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
rng = np.random.default_rng(7)
array = rng.standard_normal((300, 500))
np.save(root / "array.npy", array)
np.testing.assert_array_equal(np.load(root / "array.npy"), array)
mapped = np.load(root / "array.npy", mmap_mode="r")
np.testing.assert_array_equal(mapped[123:200, 7:400], array[123:200, 7:400])
np.savez_compressed(root / "both.npz", a=array, b=array[::2])
with np.load(root / "both.npz") as z:
    np.testing.assert_array_equal(z["b"], array[::2])
big = np.memmap(root / "data" / "sub" / "big.bin", dtype=np.uint8, mode="r")
assert bytes(big[100_000:100_050]) == raw[100_000:100_050] and len(big) == len(raw)
print("ok")
"""

_PANDAS = """
import sys
from pathlib import Path
import pandas as pd
frame = pd.DataFrame({"x": range(1000), "y": [f"v{i}" for i in range(1000)]})
frame.to_csv(Path(sys.argv[1]) / "frame.csv", index=False)
pd.testing.assert_frame_equal(pd.read_csv(Path(sys.argv[1]) / "frame.csv"), frame)
print("ok")
"""


def _run(code: str, *args: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_numpy_save_load_and_memmap(rw: Mount, tmp_path: Path) -> None:
    raw = tmp_path / "src" / "data" / "sub" / "big.bin"
    assert _run(_NUMPY, rw.mountpoint, raw) == "ok\n"


def test_pandas_csv_roundtrip(rw: Mount) -> None:
    pytest.importorskip("pandas")
    assert _run(_PANDAS, rw.mountpoint) == "ok\n"

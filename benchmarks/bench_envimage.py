"""Environment images: TensorFlow's import and the demo's training on an image, beside the
same program on the plain venv, both under ``securetf run`` in the same run.

Run: python -m benchmarks.run envimage   (or ``make bench``; needs root, /dev/fuse, a loop
device, mkfs.erofs and TensorFlow)

The project's own venv (TensorFlow, scikit-learn, securetf) is packed into an image once
(its time is reported too). Then, alternately, the same program runs under ``securetf run``
on the image (``env_image`` pinned, each run a fresh mount: every chunk it reads is
checked) and on the plain venv (the runtime shows it read-only, unchecked). The program
times ``import tensorflow`` and the demo's training (scikit-learn's breast-cancer data, the
demo's model, 30 epochs) itself. Each figure is the median of RUNS runs; the spread is the
range over them.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.runtime.support import make_job

from benchmarks._common import Row
from benchmarks.bench_runtime import _deployment

RUNS = 5

PROGRAM = r"""
import time
start = time.perf_counter()
import tensorflow as tf
print(f"IMPORT {time.perf_counter() - start!r}", flush=True)
from sklearn.datasets import load_breast_cancer

data = load_breast_cancer()
x, y = data.data.astype("float32"), data.target.astype("float32")
split = int(0.8 * len(x))
tf.keras.utils.set_random_seed(7)
normalize = tf.keras.layers.Normalization()
normalize.adapt(x[:split])
model = tf.keras.Sequential([
    tf.keras.Input(shape=(x.shape[1],)),
    normalize,
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(x[:split], y[:split], epochs=30, batch_size=32, verbose=0)
print(f"EPOCH {(time.perf_counter() - start) / 30!r}", flush=True)
"""


def _values(stdout: str) -> dict[str, float]:
    return {
        line.split()[0]: float(line.split()[1])
        for line in stdout.splitlines()
        if line.startswith(("IMPORT ", "EPOCH "))
    }


def _spread(values: list[float]) -> str:
    return f"median of {len(values)}, range {min(values):.3g}-{max(values):.3g}"


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="securetf-bench-env-") as tmp:
        base = Path(tmp)
        image = base / "env.img"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "securetf.cli.main", "env", "pack", sys.prefix, str(image)],
            check=True,
            capture_output=True,
        )
        packed = time.perf_counter() - start
        size = image.stat().st_size
        cas, dep = _deployment(base)
        jobs = []
        try:
            args = {
                "app_files": {"prog.py": PROGRAM},
                "services": {"bench": ["python", "prog.py"]},
                "dataset": {"unused.txt": b"-"},
                "environment": {"TF_CPP_MIN_LOG_LEVEL": "3"},
            }
            on_image = make_job(dep, env_image=image, **args)  # type: ignore[arg-type]
            jobs.append(on_image)
            on_venv = make_job(dep, **args)  # type: ignore[arg-type]
            jobs.append(on_venv)
            seen: dict[str, dict[str, list[float]]] = {"image": {}, "venv": {}}
            for _ in range(RUNS):
                for name, job in (("image", on_image), ("venv", on_venv)):
                    proc = job.run("bench")
                    if proc.returncode != 0:
                        raise RuntimeError(f"the {name} run failed:\n{proc.stderr[-3000:]}")
                    for key, value in _values(proc.stdout).items():
                        seen[name].setdefault(key, []).append(value)
        finally:
            cas.stop()
            for job in jobs:
                shutil.rmtree(job.root, ignore_errors=True)
    rows = [Row("envimage", f"pack the project's venv ({size / 1e9:.2f} GB image)", packed, "s")]
    for key, what, target in (
        ("IMPORT", "import tensorflow, on a fresh mount of the image", "<= 1.25x"),
        ("EPOCH", "the demo's training, one epoch (mean of 30)", "<= 1.05x"),
    ):
        img, venv = seen["image"][key], seen["venv"][key]
        rows.append(
            Row(
                "envimage",
                f"{what} ({_spread(img)}; venv {_spread(venv)})",
                statistics.median(img),
                "s",
                "the plain venv, same runtime",
                statistics.median(venv),
                target,
            )
        )
    return rows

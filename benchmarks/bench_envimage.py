"""Environment images: TensorFlow's import and the demo's training on an image, beside the
same program on the plain venv, both under ``securetf run`` in the same run.

Run: python -m benchmarks.run envimage   (or ``make bench``; needs root, /dev/fuse, a loop
device, mkfs.erofs and TensorFlow)

The project's own venv (TensorFlow, scikit-learn, securetf) is packed into an image once
(its time is reported too). Then, alternately, the same program runs under ``securetf run``
on the image (``env_image`` pinned, each run a fresh mount: every chunk it reads is
checked) and on the plain venv (the runtime shows it read-only, unchecked). The program
times ``import tensorflow`` and the demo's training (scikit-learn's breast-cancer data, the
demo's model, 30 epochs) itself. Then ``securetf env serve`` keeps the image mounted and
the pair alternates again: after the kept mount's first run (not counted), the image's
chunks come from the kernel's cache of what was checked. Each figure is the median of RUNS
runs; the spread is the range over them.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.runtime.support import Job, make_job

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


def _check(proc: subprocess.CompletedProcess[str], name: str) -> str:
    if proc.returncode != 0:
        raise RuntimeError(f"the {name} run failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _alternate(pairs: tuple[tuple[str, Job], ...], seen: dict[str, dict[str, list[float]]]) -> None:
    for _ in range(RUNS):
        for name, job in pairs:
            for key, value in _values(_check(job.run("bench"), name)).items():
                seen[name].setdefault(key, []).append(value)


@contextmanager
def _kept(image: Path) -> Iterator[None]:
    """``securetf env serve`` for ``image`` while the block runs."""
    server = subprocess.Popen(
        [sys.executable, "-m", "securetf.cli.main", "env", "serve", str(image)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        if not server.stdout.readline().startswith("sha256:"):
            raise RuntimeError("securetf env serve failed")
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)


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
            seen: dict[str, dict[str, list[float]]] = {"image": {}, "venv": {}, "kept": {}}
            seen["venv-kept"] = {}
            pairs = (("image", on_image), ("venv", on_venv))
            _alternate(pairs, seen)
            with _kept(image):
                _check(on_image.run("bench"), "first kept")  # its first run fills the cache
                _alternate((("kept", on_image), ("venv-kept", on_venv)), seen)
        finally:
            cas.stop()
            for job in jobs:
                shutil.rmtree(job.root, ignore_errors=True)
    rows = [Row("envimage", f"pack the project's venv ({size / 1e9:.2f} GB image)", packed, "s")]
    for key, name, what, target in (
        ("IMPORT", "image", "import tensorflow, on a fresh mount of the image", ""),
        (
            "IMPORT",
            "kept",
            "import tensorflow, image kept mounted (securetf env serve; after its first run)",
            "<= 1.25x",
        ),
        ("EPOCH", "image", "the demo's training, one epoch (mean of 30)", "<= 1.05x"),
    ):
        img, venv = seen[name][key], seen["venv" if name == "image" else "venv-kept"][key]
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

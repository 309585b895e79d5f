"""``securetf run``: one epoch of Keras training over a dataset read through the shield, and
the runtime's start-up cost before the program's first line, each beside the same program
run without securetf in the same run.

Run: python -m benchmarks.run runtime   (or ``make bench``; needs root, /dev/fuse, TensorFlow)

- Epoch: a 400,000-row table (32 float32 features and a label, 53 MB) that the program
  streams with ``tf.data.FixedLengthRecordDataset`` while it fits one epoch, then saves the
  model. The program times itself from before its first read to after the save; page
  caches are dropped before every run of either kind, so both read from the disk. The
  same program, the same environment: once under ``securetf run`` (dataset in a sealed
  volume mounted read-only, model in a read-write one), once as ``python`` on plain files.
- Start-up: the time from invoking the command until the program prints its first line
  (a timestamp); ``securetf run`` measures and copies the app, attests and provisions at
  the CAS, mounts two volumes and the secret tmpfs before that. The figure is that time
  minus the plain program's own (``python first.py``), the median of several runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from tests.cas.server_support import CasProcess
from tests.ports import free_port
from tests.runtime.support import VENV_BIN, Deployment, Job, make_job

from benchmarks._common import Row

ROWS = 400_000
FEATURES = 32
REPEAT = 5
STARTS = 7

EPOCH = r"""
import os, time
import tensorflow as tf

F = int(os.environ["FEATURES"])
tf.keras.utils.set_random_seed(7)
model = tf.keras.Sequential([
    tf.keras.Input(shape=(F,)),
    tf.keras.layers.Dense(64, activation="relu"),
    tf.keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy")

def parse(raw):
    table = tf.io.decode_raw(raw, tf.float32)
    return table[:, :F], table[:, F:]

start = time.perf_counter()
ds = tf.data.FixedLengthRecordDataset(
    os.path.join(os.environ["DATA_DIR"], "train.bin"), (F + 1) * 4, buffer_size=1 << 20
)
ds = ds.batch(512).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
model.fit(ds, epochs=1, verbose=0)
model.save(os.path.join(os.environ["MODEL_DIR"], "model.keras"))
print(f"EPOCH {time.perf_counter() - start!r}", flush=True)
"""

FIRST = 'import time; print(f"FIRST {time.time()!r}", flush=True)\n'

ENV = {"FEATURES": str(FEATURES), "TF_CPP_MIN_LOG_LEVEL": "2"}


def _table() -> bytes:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((ROWS, FEATURES), dtype=np.float32)
    w = rng.standard_normal(FEATURES).astype(np.float32)
    y = (x @ w > 0).astype(np.float32)
    return np.column_stack([x, y]).astype(np.float32).tobytes()


def _deployment(base: Path) -> tuple[CasProcess, Deployment]:
    home = base / "home"
    home.mkdir()
    cas = CasProcess(data=base / "cas", home=home, port=free_port())
    cas.start()
    cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
    public = cas.cli("owner", "keygen", base / "owner.key").stdout.strip()
    return cas, Deployment(cas, base / "owner.key", public)


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _plain_env(job: Job, data: Path, model: Path) -> dict[str, str]:
    """What the runtime gives the program, with plain directories instead of the mounts."""
    env = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TERM", "TZ") if k in os.environ}
    env["PATH"] = job.run_env()["PATH"]
    return env | ENV | {"DATA_DIR": str(data), "MODEL_DIR": str(model)}


def _value(stdout: str, label: str) -> float:
    for line in stdout.splitlines():
        if line.startswith(label + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {label} line in the program's output:\n{stdout}")


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float]:
    """(stdout, wall seconds) of a run that must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout, wall


def _epoch(job: Job, plain_env: dict[str, str]) -> list[Row]:
    shield: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    for _ in range(REPEAT):
        _drop_caches()
        out, wall = _run(job.run_args("epoch"), job.run_env(), job.root)
        shield.append((_value(out, "EPOCH"), wall))
        _drop_caches()
        out, wall = _run(["python", "epoch.py"], plain_env, job.app)
        plain.append((_value(out, "EPOCH"), wall))
    # Medians, never the best run: the machine is noisy.
    shield_epoch = statistics.median(e for e, _ in shield)
    shield_wall = statistics.median(w for _, w in shield)
    plain_epoch = statistics.median(e for e, _ in plain)
    plain_wall = statistics.median(w for _, w in plain)
    what = (
        f"one epoch over {ROWS:,} rows ({ROWS * (FEATURES + 1) * 4 / 1e6:.0f} MB) read by tf.data"
    )
    return [
        Row(
            "runtime",
            f"{what}: read, fit and save, as the program times it",
            shield_epoch,
            "s",
            "same program on plain files",
            plain_epoch,
            "<= 1.05x",
        ),
        Row(
            "runtime",
            f"{what}: whole command (start, epoch, commit)",
            shield_wall,
            "s",
            "python on plain files (reference)",
            plain_wall,
        ),
    ]


def _first_line(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from invoking ``args`` until the program prints its first line's timestamp."""
    invoked = time.time()
    out, _ = _run(args, env, cwd)
    return _value(out, "FIRST") - invoked


def _import_seconds(job: Job) -> float:
    """The CLI's imports alone: a share of the start-up that is no work of the runtime."""
    code = "import time; t = time.perf_counter(); import securetf.cli.main; "
    code += "print('FIRST', time.perf_counter() - t)"
    out, _ = _run(["python", "-c", code], job.run_env(), job.root)
    return _value(out, "FIRST")


def _startup(job: Job, plain_env: dict[str, str]) -> list[Row]:
    shield: list[float] = []
    plain: list[float] = []
    for _ in range(STARTS):
        shield.append(_first_line(job.run_args("first"), job.run_env(), job.root))
        plain.append(_first_line(["python", "first.py"], plain_env, job.app))
    s, p = statistics.median(shield), statistics.median(plain)
    imports = statistics.median(_import_seconds(job) for _ in range(STARTS))
    return [
        Row(
            "runtime",
            "start-up before the program's first line, beyond the program's own start",
            s - p,
            "s",
            target="< 1 s",
        ),
        Row(
            "runtime",
            "of which: importing securetf's CLI (python -c 'import securetf.cli.main')",
            imports,
            "s",
        ),
        Row(
            "runtime",
            "invoking to the program's first line (2 volumes mounted)",
            s,
            "s",
            "python first.py",
            p,
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="securetf-bench-runtime-") as tmp:
        cas, dep = _deployment(Path(tmp))
        job = None
        try:
            job = make_job(
                dep,
                app_files={"epoch.py": EPOCH, "first.py": FIRST},
                services={"epoch": ["python", "epoch.py"], "first": ["python", "first.py"]},
                dataset={"train.bin": _table()},
                environment=ENV,
            )
            plain_data, plain_model = job.root / "plain-data", job.root / "plain-model"
            plain_data.mkdir()
            plain_model.mkdir()
            (plain_data / "train.bin").write_bytes(_table())
            env = _plain_env(job, plain_data, plain_model)
            assert (VENV_BIN / "python").exists()
            return _epoch(job, env) + _startup(job, env)
        finally:
            cas.stop()
            if job is not None:
                subprocess.run(["rm", "-rf", str(job.root)], check=False)

"""The demo's unmodified Keras program, through the shield and without it: the same
model, and no plaintext of the dataset or the model on the host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from .support import (
    REPO,
    VENV_BIN,
    Deployment,
    Job,
    find_plaintext,
    find_plaintext_on_host,
    make_job,
)

pytestmark = pytest.mark.slow

EPOCHS = "5"
TF_ENV = {"EPOCHS": EPOCHS, "TF_CPP_MIN_LOG_LEVEL": "2"}

COMPARE = """
import sys
import numpy as np
import tensorflow as tf
a, b = (tf.keras.models.load_model(p, compile=False).get_weights() for p in sys.argv[1:3])
assert len(a) == len(b) > 0, (len(a), len(b))
for x, y in zip(a, b):
    assert x.shape == y.shape and np.array_equal(x, y), "weights differ"
print("same weights:", len(a), "arrays")
"""


def _breast_cancer_csv(marker: str) -> bytes:
    """scikit-learn's breast-cancer table; ``marker`` in the header (which train.py skips)."""
    d = load_breast_cancer()
    table = np.column_stack([d.data, d.target])
    header = ",".join([*d.feature_names, f"label-{marker}"])
    lines = [header] + [",".join(f"{x:.6g}" for x in row) for row in table]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Trained:
    job: Job
    data_marker: str
    plain_model: Path  # the model written without securetf
    shielded_model: Path  # the sealed model volume, unsealed with the owner's key
    run: subprocess.CompletedProcess[str]
    started: float  # time.time() before either training run


@pytest.fixture(scope="module")
def trained(deployment: Deployment) -> Iterator[Trained]:
    marker = f"data-marker-{os.urandom(12).hex()}"
    csv = _breast_cancer_csv(marker)
    train = (REPO / "demo" / "app" / "train.py").read_text()
    job = make_job(
        deployment,
        app_files={"train.py": train},
        services={"train": ["python", "train.py"]},
        dataset={"breast_cancer.csv": csv},
        environment=TF_ENV,
    )
    try:
        # Without securetf: the same program file, plain directories.
        plain_data, plain_model = job.root / "plain" / "data", job.root / "plain" / "model"
        plain_data.mkdir(parents=True)
        plain_model.mkdir()
        (plain_data / "breast_cancer.csv").write_bytes(csv)
        env = {k: os.environ[k] for k in ("HOME", "LANG") if k in os.environ}
        env |= {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", **TF_ENV}
        env |= {"DATA_DIR": str(plain_data), "MODEL_DIR": str(plain_model)}
        plain = subprocess.run(
            ["python", str(job.app / "train.py")],
            env=env,
            cwd=job.app,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert plain.returncode == 0, plain.stderr
        # The plaintext inputs go before the run whose traces are searched.
        shutil.rmtree(plain_data)
        started = time.time()
        run = job.run("train")
        assert run.returncode == 0, run.stderr
        unsealed = job.root / "model-plain"
        job.dep.cli("volume", "unseal", job.sealed_model, unsealed, "--key-file", job.model_key())
        yield Trained(job, marker, plain_model, unsealed, run, started)
    finally:
        shutil.rmtree(job.root, ignore_errors=True)


def test_same_model_through_the_shield(trained: Trained) -> None:
    assert f"trained {EPOCHS} epochs" in trained.run.stdout
    names = sorted(p.name for p in trained.shielded_model.iterdir())
    assert names == sorted(p.name for p in trained.plain_model.iterdir())
    assert names == ["metrics.json", "model.keras", "serving"]
    metrics = [
        json.loads((d / "metrics.json").read_text())
        for d in (trained.plain_model, trained.shielded_model)
    ]
    assert metrics[0] == metrics[1]
    assert metrics[0]["test_accuracy"] > 0.8
    same = subprocess.run(
        [sys.executable, "-c", COMPARE]
        + [str(d / "model.keras") for d in (trained.plain_model, trained.shielded_model)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert same.returncode == 0, same.stderr
    assert "same weights" in same.stdout


def test_no_plaintext_of_dataset_or_model_on_the_host(trained: Trained) -> None:
    job = trained.job
    metrics = (trained.shielded_model / "metrics.json").read_bytes()
    # (The table's rows are public: scikit-learn ships them; the header's marker is not.)
    needles = [trained.data_marker.encode(), metrics]
    # The search finds them where they are in plaintext (the owner's unsealed copy)...
    assert find_plaintext([trained.shielded_model], [metrics])
    shutil.rmtree(trained.shielded_model)
    shutil.rmtree(trained.plain_model)
    # ...and nowhere else: sealed volumes, the CAS, the runtime's temporary directories.
    private = [job.root, job.dep.cas.data, job.dep.cas.home]
    assert find_plaintext_on_host(private, needles, trained.started) == []
    # The mount points were the program's alone: not even an empty directory on the host.
    assert not job.data_mount.exists()
    assert not job.model_mount.exists()

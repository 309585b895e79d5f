"""TensorFlow's own file I/O works through the mount: tf.data, tf.io.gfile, SavedModel,
checkpoints, .keras and HDF5 weights, plus pandas, numpy and plain open().

The I/O runs in a child process (as the program does under the runtime); afterwards the
volume is committed, reopened from storage, and every file is read back and checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from securetf.shield.fs import Mount
from securetf.volume import Volume, VolumeKey

pytest.importorskip("tensorflow")

_PROGRAM = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, pandas as pd, tensorflow as tf
root = sys.argv[1]
p = lambda *a: os.path.join(root, *a)

# plain open, numpy, pandas
with open(p("notes.txt"), "w") as f:
    f.write("plain text\n")
np.save(p("array.npy"), np.arange(1000.0))
pd.DataFrame({"x": np.arange(200), "y": np.arange(200) % 2}).to_csv(p("table.csv"), index=False)

# tf.io.gfile and tf.data
tf.io.gfile.makedirs(p("gfile", "deep"))
with tf.io.gfile.GFile(p("gfile", "deep", "lines.txt"), "w") as f:
    f.write("".join(f"{i},{i % 2}\n" for i in range(500)))
assert tf.io.gfile.listdir(p("gfile")) == ["deep/"] or tf.io.gfile.listdir(p("gfile")) == ["deep"]
assert tf.io.gfile.glob(p("gfile", "deep", "*.txt")) == [p("gfile", "deep", "lines.txt")]
rows = list(tf.data.TextLineDataset(p("gfile", "deep", "lines.txt")).as_numpy_iterator())
assert len(rows) == 500 and rows[7] == b"7,1"
csv = tf.data.experimental.make_csv_dataset(
    p("table.csv"), batch_size=50, num_epochs=1, shuffle=False
)
assert sum(int(b["y"].numpy().sum()) for b in csv) == 100

# a model: .keras, SavedModel, a checkpoint and HDF5 weights
tf.keras.utils.set_random_seed(1)
layers = lambda: [tf.keras.Input((4,)), tf.keras.layers.Dense(3), tf.keras.layers.Dense(1)]
model = tf.keras.Sequential(layers())
x = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
want = model(x).numpy()
model.save(p("model.keras"))
np.testing.assert_allclose(tf.keras.models.load_model(p("model.keras"))(x).numpy(), want, rtol=1e-6)
model.save_weights(p("model.weights.h5"))
other = tf.keras.Sequential(layers())
other.load_weights(p("model.weights.h5"))
np.testing.assert_allclose(other(x).numpy(), want, rtol=1e-6)
module = tf.Module()
module.v = tf.Variable([1.0, 2.0, 3.0])
module.f = tf.function(lambda t: t * module.v, input_signature=[tf.TensorSpec([3], tf.float32)])
tf.saved_model.save(module, p("saved"))
loaded = tf.saved_model.load(p("saved"))
assert loaded.f(tf.constant([1.0, 1.0, 1.0])).numpy().tolist() == [1.0, 2.0, 3.0]
ckpt = tf.train.Checkpoint(v=module.v)
path = ckpt.save(p("ckpt", "step"))
module.v.assign([0.0, 0.0, 0.0])
ckpt.restore(path).assert_consumed()
assert module.v.numpy().tolist() == [1.0, 2.0, 3.0]
assert tf.train.latest_checkpoint(p("ckpt")) == path
print("ok")
"""


def test_tensorflow_io_through_the_mount(
    rw: Mount, sealed: Path, key: VolumeKey, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(rw.mountpoint)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
    rw.unmount(commit=True)
    with Volume.open(sealed, key) as vol:
        vol.verify()
        names = {f.path for f in vol.files()}
        for expected in (
            "notes.txt",
            "array.npy",
            "table.csv",
            "gfile/deep/lines.txt",
            "model.keras",
            "model.weights.h5",
            "saved/saved_model.pb",
        ):
            assert expected in names, sorted(names)
        assert any(n.startswith("ckpt/step-1") for n in names)
        assert vol.open_file("notes.txt").read() == b"plain text\n"

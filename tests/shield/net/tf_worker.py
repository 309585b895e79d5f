"""An unmodified MultiWorkerMirroredStrategy job: a custom training loop or Keras ``fit``.

Run as ``python -m tests.shield.net.tf_worker STEPS [loop|fit]``: it reads TF_CONFIG like
any TensorFlow program and prints its final loss, its weights and their digest as JSON.
``fit`` needs ``TF_USE_LEGACY_KERAS=1`` (tf-keras): Keras 3's ``fit`` does not run under
MultiWorkerMirroredStrategy (keras-team/keras#20585). The initial weights come from a
fixed seed, so the same job gives the same weights with or without the shield.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

GLOBAL_BATCH = 64
SEED = 7


def main(steps: int, mode: str = "loop") -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential(
            [
                tf.keras.Input((8,)),
                tf.keras.layers.Dense(32, activation="relu"),
                tf.keras.layers.Dense(1),
            ]
        )
        optimizer = tf.keras.optimizers.SGD(0.05)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(GLOBAL_BATCH)
    data = data.with_options(options)
    if mode == "fit":
        loss = _fit(tf, strategy, model, optimizer, data, steps)
    elif mode == "loop":
        loss = _loop(tf, strategy, model, optimizer, data, steps)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    weights = [v.numpy() for v in model.trainable_variables]
    raw = b"".join(w.tobytes() for w in weights)
    return {
        "loss": loss,
        "weights": hashlib.sha256(raw).hexdigest(),
        "values": np.concatenate([w.ravel() for w in weights]).tolist(),
    }


def _fit(tf: Any, strategy: Any, model: Any, optimizer: Any, data: Any, steps: int) -> float:
    if "tf_keras" not in type(model).__module__:
        raise SystemExit("fit under MultiWorkerMirroredStrategy needs TF_USE_LEGACY_KERAS=1")
    with strategy.scope():
        model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return float(history.history["loss"][-1])


def _loop(tf: Any, strategy: Any, model: Any, optimizer: Any, data: Any, steps: int) -> float:
    batches = iter(strategy.experimental_distribute_dataset(data))

    @tf.function
    def step(it: Any) -> Any:
        def replica(batch: Any) -> Any:
            xb, yb = batch
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(xb, training=True) - yb)) / GLOBAL_BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        per_replica = strategy.run(replica, args=(next(it),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    loss: Any = 0.0
    for _ in range(steps):
        loss = step(batches)
    return float(loss)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), *sys.argv[2:3])), flush=True)

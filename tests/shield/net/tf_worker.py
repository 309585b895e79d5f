"""An unmodified 2-worker MultiWorkerMirroredStrategy job (custom training loop).

Run as ``python -m tests.shield.net.tf_worker STEPS``: it reads TF_CONFIG like any
TensorFlow program and prints its final loss and a digest of its weights as JSON.
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


def main(steps: int) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

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
    batches = iter(strategy.experimental_distribute_dataset(data.with_options(options)))

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
    weights = b"".join(v.numpy().tobytes() for v in model.trainable_variables)
    return {"loss": float(loss), "weights": hashlib.sha256(weights).hexdigest()}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))), flush=True)

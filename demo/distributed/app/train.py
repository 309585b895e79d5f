"""A plain 2-worker TensorFlow training job: MultiWorkerMirroredStrategy and Keras ``fit``.

It knows nothing of securetf. Like any multi-worker TensorFlow program it finds its cluster
in TF_CONFIG; it reads its data from DATA_DIR (under ``securetf run``, a sealed volume) and
prints its final weights' digest and held-out accuracy as JSON. Keras ``fit`` under
MultiWorkerMirroredStrategy needs tf-keras (TF_USE_LEGACY_KERAS=1): Keras 3's does not run
there (keras-team/keras#20585).
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

DATA = os.environ.get("DATA_DIR", "/data")
EPOCHS = int(os.environ.get("EPOCHS", "8"))
GLOBAL_BATCH = 64

tf.keras.utils.set_random_seed(7)
strategy = tf.distribute.MultiWorkerMirroredStrategy()

table = np.loadtxt(os.path.join(DATA, "breast_cancer.csv"), delimiter=",", skiprows=1)
features, labels = table[:, :-1].astype("float32"), table[:, -1:].astype("float32")
split = int(0.8 * len(table))
mean, std = features[:split].mean(axis=0), features[:split].std(axis=0) + 1e-6
features = (features - mean) / std

options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
train = tf.data.Dataset.from_tensor_slices((features[:split], labels[:split]))
train = train.repeat().batch(GLOBAL_BATCH, drop_remainder=True).with_options(options)

with strategy.scope():
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(features.shape[1],)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"]
    )
steps = split // GLOBAL_BATCH
history = model.fit(train, epochs=EPOCHS, steps_per_epoch=steps, verbose=0)

predicted = model.predict(features[split:], verbose=0, batch_size=256) > 0.5
accuracy = float((predicted == (labels[split:] > 0.5)).mean())
weights = b"".join(w.tobytes() for w in model.get_weights())
result = {
    "worker": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
    "steps": EPOCHS * steps,
    "loss": float(history.history["loss"][-1]),
    "test_accuracy": accuracy,
    "weights_sha256": hashlib.sha256(weights).hexdigest(),
}
print(json.dumps(result), flush=True)

"""A plain Keras training program: it reads /data and writes /model, and knows nothing of
securetf. Under `securetf run`, /data and /model are sealed volumes.

It writes the model twice: model.keras for its owner, and serving/breast_cancer/1/ in
TensorFlow Serving's layout, with the input normalization inside the model.
"""

import json
import os

import numpy as np
import tensorflow as tf

DATA = os.environ.get("DATA_DIR", "/data")
MODEL = os.environ.get("MODEL_DIR", "/model")
EPOCHS = int(os.environ.get("EPOCHS", "30"))

tf.keras.utils.set_random_seed(7)
tf.config.experimental.enable_op_determinism()

table = np.loadtxt(os.path.join(DATA, "breast_cancer.csv"), delimiter=",", skiprows=1)
features, labels = table[:, :-1].astype("float32"), table[:, -1].astype("float32")
split = int(0.8 * len(table))

normalize = tf.keras.layers.Normalization()
normalize.adapt(features[:split])
model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(features.shape[1],)),
        normalize,
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(features[:split], labels[:split], epochs=EPOCHS, batch_size=32, verbose=0)
loss, accuracy = model.evaluate(features[split:], labels[split:], verbose=0)

model.save(os.path.join(MODEL, "model.keras"))
version_dir = os.path.join(MODEL, "serving", "breast_cancer", "1")
os.makedirs(version_dir, exist_ok=True)
model.save(os.path.join(version_dir, "model.keras"))
with open(os.path.join(MODEL, "metrics.json"), "w") as f:
    json.dump({"test_accuracy": float(accuracy), "test_loss": float(loss)}, f)
print(f"trained {EPOCHS} epochs: test accuracy {accuracy:.3f}")

"""The classification models of the serving benchmark, built locally, and their bare calls.

Three Keras applications with random weights (``weights=None``: nothing is downloaded),
chosen for their size next to the secureTF paper's DenseNet (42 MB), Inception v3 (91 MB)
and Inception v4 (163 MB; Keras has no Inception v4, so ResNet101 stands in). Each is
written in TensorFlow Serving's layout twice: as a SavedModel (``model.export``, what
TensorFlow Serving loads) and converted to TF Lite.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: (served name, keras.applications architecture)
ARCHITECTURES = (
    ("densenet121", "DenseNet121"),
    ("inceptionv3", "InceptionV3"),
    ("resnet101", "ResNet101"),
)

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BenchModel:
    """One served model: its name at the server, its input and its size on disk."""

    name: str  # as served, e.g. "densenet121" or "densenet121_tflite"
    label: str  # for the table and the chart, e.g. "DenseNet121 SavedModel"
    fmt: str  # "saved_model" or "tflite"
    path: Path  # the version directory (SavedModel) or the .tflite file
    input_name: str
    x: Array  # one image, batch of 1
    size_mb: float  # the model's weights: the .keras file, or the .tflite file


def _build_one(index: int, name: str, arch: str, root: Path, seed: int) -> list[BenchModel]:
    """Build one architecture, export it as a SavedModel and convert that to TF Lite."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed + index)
    model = getattr(keras.applications, arch)(weights=None)
    keras_file = root / f"{name}.keras"
    model.save(keras_file)  # only to state the model's size as Keras stores it
    keras_mb = keras_file.stat().st_size / 1e6
    keras_file.unlink()
    saved = root / name / "1"
    model.export(str(saved), verbose=False)
    lite_file = root / f"{name}_tflite" / "1" / "model.tflite"
    lite_file.parent.mkdir(parents=True)
    lite_file.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    rng = np.random.default_rng(seed + index)
    x = rng.normal(size=(1, *model.input_shape[1:])).astype(np.float32)
    (sm_input,) = (
        tf.saved_model.load(str(saved)).signatures["serving_default"].structured_input_signature[1]
    )
    (lite_input,) = _litert(lite_file).get_input_details()
    lite_mb = lite_file.stat().st_size / 1e6
    return [
        BenchModel(name, f"{arch} SavedModel", "saved_model", saved, sm_input, x, keras_mb),
        BenchModel(
            f"{name}_tflite", f"{arch} TF Lite", "tflite", lite_file, lite_input, x, lite_mb
        ),
    ]


def build(root: Path, *, seed: int = 0) -> list[BenchModel]:
    """Build, export and convert every architecture into ``root`` (TF Serving's layout).

    Tracing and conversion run mostly on one core, so two processes build side by side.
    """
    root.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        # The largest first, so the other two share the second process meanwhile.
        futures = {
            name: pool.submit(_build_one, i, name, arch, root, seed)
            for i, (name, arch) in reversed(list(enumerate(ARCHITECTURES)))
        }
        return [m for name, _arch in ARCHITECTURES for m in futures[name].result()]


def _versions() -> str:
    found = []
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert"):
        try:
            found.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ",".join(found)


def cached(cache: Path, *, seed: int = 0) -> list[BenchModel]:
    """The models from ``cache`` if they were built by these versions, else built there.

    Building takes minutes on two cores (tracing the export and the TF Lite conversion
    dominate); the models are a pure function of the architectures, the seed and the
    library versions, so a later run reuses them.
    """
    key = {"versions": _versions(), "seed": seed, "architectures": ARCHITECTURES}
    meta = cache / "models.json"
    if meta.is_file():
        doc = json.loads(meta.read_text())
        if doc.get("key") == json.loads(json.dumps(key)):
            return [_from_json(cache, m) for m in doc["models"]]
    shutil.rmtree(cache, ignore_errors=True)
    models = build(cache, seed=seed)
    doc = {"key": key, "models": [_to_json(cache, m) for m in models]}
    (cache / "models.json.tmp").write_text(json.dumps(doc, indent=1))
    (cache / "models.json.tmp").rename(meta)
    return models


def _to_json(cache: Path, m: BenchModel) -> dict[str, Any]:
    doc = dataclasses.asdict(m)
    doc["path"] = str(m.path.relative_to(cache))
    doc["x"] = {"shape": list(m.x.shape), "data": base64.b64encode(m.x.tobytes()).decode()}
    return doc


def _from_json(cache: Path, doc: dict[str, Any]) -> BenchModel:
    raw = base64.b64decode(doc["x"]["data"])
    x = np.frombuffer(raw, dtype=np.float32).reshape(doc["x"]["shape"]).copy()
    return BenchModel(**{**doc, "path": cache / doc["path"], "x": x})


def _litert(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_signature_runner("serving_default")


class Native:
    """The model called in this process without securetf: TensorFlow's or LiteRT's own API."""

    def __init__(self, model: BenchModel) -> None:
        self._model = model
        if model.fmt == "tflite":
            self._runner = _litert(model.path)
        else:
            import tensorflow as tf

            self._tf = tf
            self._loaded = tf.saved_model.load(str(model.path))  # the signature needs it alive
            self._fn = self._loaded.signatures["serving_default"]

    def __call__(self) -> Array:
        m = self._model
        if m.fmt == "tflite":
            (out,) = self._runner(**{m.input_name: m.x}).values()
            return np.array(out, copy=True)
        (out,) = self._fn(**{m.input_name: self._tf.constant(m.x)}).values()
        return np.asarray(out.numpy())


def model_bytes(root: Path) -> int:
    """Everything the server loads (the volume's plaintext)."""
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())

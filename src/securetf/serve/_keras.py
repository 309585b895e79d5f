"""Keras backend: a ``.keras`` file loaded with ``keras.saving.load_model``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from securetf.errors import UsageError
from securetf.serve.signature import (
    SIGNATURE_KEY,
    Arrays,
    OneSignature,
    Signature,
    TensorInfo,
    shape_of,
)


def _info(name: str, tensor: Any) -> TensorInfo:
    return TensorInfo(name=name, dtype=np.dtype(str(tensor.dtype)), shape=shape_of(tensor.shape))


def _outputs(model: Any) -> list[tuple[str, Any]]:
    """Output names as the model's call returns them: dict keys, else ``output_N``.

    ``output_N`` is what ``model.export`` names them in a SavedModel, so one model answers
    with the same names whichever format it is served from.
    """
    try:
        out = model.output
    except AttributeError:  # a Sequential model that was loaded but never called
        out = list(model.outputs)
    if isinstance(out, Mapping):
        return [(str(k), v) for k, v in out.items()]
    if isinstance(out, list | tuple):
        if len(out) == 1:
            return [("output_0", out[0])]
        return [(f"output_{i}", t) for i, t in enumerate(out)]
    return [("output_0", out)]


class KerasBackend(OneSignature):
    """One ``.keras`` file; inputs are named after the model's input tensors."""

    format = "keras"

    def __init__(self, path: Path) -> None:
        import keras

        try:
            self._model = keras.saving.load_model(str(path), compile=False)
        except (ValueError, OSError, TypeError) as exc:
            raise UsageError(f"cannot load Keras model {path}: {exc}") from exc
        ins = list(self._model.inputs)
        if not ins:
            raise UsageError(f"Keras model {path} has no defined inputs")
        self._input_names = [str(t.name) for t in ins]
        self._signature = Signature(
            inputs=tuple(_info(n, t) for n, t in zip(self._input_names, ins, strict=True)),
            outputs=tuple(_info(n, t) for n, t in _outputs(self._model)),
        )

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], signature: str = SIGNATURE_KEY
    ) -> Arrays:
        if len(self._input_names) == 1:
            result = self._model(inputs[self._input_names[0]], training=False)
        else:
            result = self._model({n: inputs[n] for n in self._input_names}, training=False)
        if isinstance(result, Mapping):
            return {str(k): np.asarray(v) for k, v in result.items()}
        if isinstance(result, list | tuple):
            return {f"output_{i}": np.asarray(v) for i, v in enumerate(result)}
        return {"output_0": np.asarray(result)}

"""SavedModel backend: ``tf.saved_model.load`` and its ``serving_default`` signature."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from securetf.errors import UsageError
from securetf.serve.signature import Arrays, Signature, TensorInfo, shape_of

SIGNATURE_KEY = "serving_default"


def _info(name: str, spec: Any) -> TensorInfo:
    dims = None if spec.shape.rank is None else spec.shape.as_list()
    return TensorInfo(name=name, dtype=np.dtype(spec.dtype.as_numpy_dtype), shape=shape_of(dims))


class SavedModelBackend:
    """A SavedModel directory (one with ``saved_model.pb``)."""

    format = "saved_model"

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._obj = tf.saved_model.load(str(path))  # kept alive: the signature needs it
        signatures = self._obj.signatures
        if SIGNATURE_KEY not in signatures:
            raise UsageError(f"SavedModel {path} has no {SIGNATURE_KEY!r} signature")
        self._fn = signatures[SIGNATURE_KEY]
        args, kwargs = self._fn.structured_input_signature
        if args:
            raise UsageError(f"SavedModel {path}: positional signature inputs are not supported")
        outputs = self._fn.structured_outputs
        if not isinstance(outputs, Mapping):
            raise UsageError(f"SavedModel {path}: signature outputs are not named")
        self._signature = Signature(
            inputs=tuple(_info(n, s) for n, s in sorted(kwargs.items())),
            outputs=tuple(_info(n, s) for n, s in sorted(outputs.items())),
        )

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, npt.NDArray[Any]]) -> Arrays:
        tf = self._tf
        result = self._fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: np.asarray(v.numpy()) for k, v in result.items()}

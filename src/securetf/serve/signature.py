"""What a served model takes and gives: named tensors with a dtype and a (partly known) shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLASSIFY",
    "PREDICT",
    "REGRESS",
    "SIGNATURE_KEY",
    "Arrays",
    "LoadedModel",
    "OneSignature",
    "Signature",
    "TensorInfo",
    "resolve_signature",
]

#: The signature a request without a name gets.
SIGNATURE_KEY = "serving_default"
#: SignatureDef method names (TensorFlow Serving's signature_constants).
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"

#: Named tensors, as a model takes them and gives them back.
Arrays = dict[str, npt.NDArray[Any]]

#: TensorFlow's DataType enum names, for metadata (TensorFlow Serving prints these).
_DT_NAMES: dict[str, str] = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "object": "DT_STRING",
    "bytes": "DT_STRING",
}


@dataclass(frozen=True)
class TensorInfo:
    """One named input or output; ``None`` in ``shape`` is a dimension of any size."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None  # None: unknown rank

    @property
    def dt_name(self) -> str:
        return _DT_NAMES.get(self.dtype.name, "DT_INVALID")

    @property
    def batched(self) -> bool:
        """Whether the first dimension is free, so rows of requests can be stacked on it."""
        return self.shape is not None and len(self.shape) >= 1 and self.shape[0] is None


@dataclass(frozen=True)
class Signature:
    """One of a model's signatures (``serving_default``, ...), inputs and outputs in order."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    method_name: str = PREDICT

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def batched(self) -> bool:
        return all(t.batched for t in self.inputs)

    def input(self, name: str) -> TensorInfo:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)


class LoadedModel(Protocol):
    """A loaded model of any format: its signatures and a call of one over named arrays.

    ``predict`` is called from one thread at a time (the model's batcher), so backends that
    are not thread-safe (TF Lite interpreters) need no lock of their own.
    """

    @property
    def format(self) -> str: ...

    @property
    def signature(self) -> Signature:
        """``serving_default``."""
        ...

    @property
    def signatures(self) -> Mapping[str, Signature]: ...

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], signature: str = SIGNATURE_KEY
    ) -> Arrays: ...


class OneSignature:
    """For backends with one signature, ``serving_default``, kept in ``_signature``."""

    _signature: Signature

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return {SIGNATURE_KEY: self._signature}


def resolve_signature(model: LoadedModel, name: str) -> tuple[str, Signature]:
    """The signature a request names (``""``: ``serving_default``), in TF Serving's words."""
    from securetf.errors import UsageError

    key = name or SIGNATURE_KEY
    found = model.signatures.get(key)
    if found is None:
        raise UsageError(f"Serving signature name: {key!r} not found in signature def")
    return key, found


def shape_of(dims: Any) -> tuple[int | None, ...] | None:
    """A TensorFlow/Keras/TF Lite shape as a tuple with ``None`` for unknown dimensions."""
    if dims is None:
        return None
    out: list[int | None] = []
    for d in list(dims):
        if d is None:
            out.append(None)
        else:
            n = int(d)
            out.append(None if n < 0 else n)
    return tuple(out)

"""TF Lite backend: ai-edge-litert's interpreter (TensorFlow's own when it is absent)."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        import tensorflow as tf

        log.info("ai-edge-litert is not installed; using tf.lite.Interpreter")
        return tf.lite.Interpreter


def _info(name: str, detail: Mapping[str, Any]) -> TensorInfo:
    dims = detail.get("shape_signature")
    if dims is None or (len(dims) == 0 and len(detail["shape"]) > 0):
        dims = detail["shape"]
    return TensorInfo(name=name, dtype=np.dtype(detail["dtype"]), shape=shape_of(dims))


class TfliteBackend(OneSignature):
    """One ``.tflite`` file and its ``serving_default`` signature runner.

    The runner resizes its inputs to each call's batch; it is not thread-safe, which the
    batcher's single worker per model guarantees.
    """

    format = "tflite"

    def __init__(self, path: Path) -> None:
        try:
            self._interp = _interpreter_class()(model_path=str(path))
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"cannot load TF Lite model {path}: {exc}") from exc
        signatures = self._interp.get_signature_list()
        if SIGNATURE_KEY in signatures:
            key = SIGNATURE_KEY
        elif len(signatures) == 1:
            key = next(iter(signatures))
        else:
            raise UsageError(f"TF Lite model {path} has no {SIGNATURE_KEY!r} signature")
        self._runner = self._interp.get_signature_runner(key)
        ins = self._runner.get_input_details()
        outs = self._runner.get_output_details()
        self._signature = Signature(
            inputs=tuple(_info(n, d) for n, d in sorted(ins.items())),
            outputs=tuple(_info(n, d) for n, d in sorted(outs.items())),
        )

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], signature: str = SIGNATURE_KEY
    ) -> Arrays:
        result = self._runner(**{k: np.ascontiguousarray(v) for k, v in inputs.items()})
        # The runner's outputs alias its buffers, which the next call overwrites.
        return {str(k): np.array(v, copy=True) for k, v in result.items()}

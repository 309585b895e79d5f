"""SavedModel backend: ``tf.saved_model.load`` and every signature it serves."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from securetf.errors import UsageError
from securetf.serve.signature import SIGNATURE_KEY, Arrays, Signature, TensorInfo, shape_of

log = logging.getLogger(__name__)

#: The tag set TensorFlow Serving loads.
SERVE_TAG = "serve"


def _info(name: str, spec: Any) -> TensorInfo:
    dims = None if spec.shape.rank is None else spec.shape.as_list()
    return TensorInfo(name=name, dtype=np.dtype(spec.dtype.as_numpy_dtype), shape=shape_of(dims))


def _meta_graph_signatures(path: Path) -> Any:
    """The serving MetaGraph's ``signature_def`` map, as TensorFlow Serving returns it.

    It has what ``tf.saved_model.load`` hides: ``__saved_model_init_op``, method names and
    the graph tensor names (``serving_default_x:0``), and it is what metadata answers.
    """
    from google.protobuf import text_format  # type: ignore[import-untyped]
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved)
    graphs = [g for g in saved.meta_graphs if SERVE_TAG in g.meta_info_def.tags]
    graphs = graphs or list(saved.meta_graphs[:1])
    sdm = get_model_metadata_pb2.SignatureDefMap()
    for graph in graphs[:1]:
        for key in sorted(graph.signature_def):
            sdm.signature_def[key].CopyFrom(graph.signature_def[key])
    return sdm


class SavedModelBackend:
    """A SavedModel directory (one with ``saved_model.pb``), with all its signatures."""

    format = "saved_model"

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._obj = tf.saved_model.load(str(path))  # kept alive: the signatures need it
        self._fns: dict[str, Any] = {}
        signatures: dict[str, Signature] = {}
        defs = _meta_graph_signatures(path)
        for key, fn in sorted(self._obj.signatures.items()):
            args, kwargs = fn.structured_input_signature
            outputs = fn.structured_outputs
            if args or not isinstance(outputs, Mapping):
                if key == SIGNATURE_KEY:
                    raise UsageError(
                        f"SavedModel {path}: {key!r} must have named inputs and outputs"
                    )
                log.warning(
                    "SavedModel %s: signature %r has unnamed inputs or outputs; it is not served",
                    path,
                    key,
                )
                continue
            method = defs.signature_def[key].method_name if key in defs.signature_def else ""
            signatures[key] = Signature(
                inputs=tuple(_info(n, s) for n, s in sorted(kwargs.items())),
                outputs=tuple(_info(n, s) for n, s in sorted(outputs.items())),
                method_name=method or "tensorflow/serving/predict",
            )
            self._fns[key] = fn
        if SIGNATURE_KEY not in signatures:
            raise UsageError(f"SavedModel {path} has no {SIGNATURE_KEY!r} signature")
        self._signatures = signatures
        self.signature_defs = defs

    @property
    def signature(self) -> Signature:
        return self._signatures[SIGNATURE_KEY]

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return self._signatures

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], signature: str = SIGNATURE_KEY
    ) -> Arrays:
        tf = self._tf
        result = self._fns[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: np.asarray(v.numpy()) for k, v in result.items()}

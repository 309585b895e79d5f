"""Model status and metadata in TensorFlow Serving's shapes (protobuf for gRPC, JSON for REST)."""

from __future__ import annotations

from typing import Any

from securetf.serve.repository import ServedModel
from securetf.serve.signature import Signature, TensorInfo

__all__ = ["metadata_json", "signature_def_map", "status_json"]

SIGNATURE_KEY = "serving_default"


def _tensor_info(info: TensorInfo) -> Any:
    from tensorflow.core.framework import tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    if info.shape is None:
        shape = tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    else:
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[
                tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else d)
                for d in info.shape
            ]
        )
    return meta_graph_pb2.TensorInfo(
        name=info.name, dtype=types_pb2.DataType.Value(info.dt_name), tensor_shape=shape
    )


def signature_def_map(sig: Signature) -> Any:
    """The model's ``SignatureDefMap`` protobuf, as ``GetModelMetadata`` returns it."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    sdm = get_model_metadata_pb2.SignatureDefMap()
    sdef = sdm.signature_def[SIGNATURE_KEY]
    sdef.method_name = sig.method_name
    for t in sig.inputs:
        sdef.inputs[t.name].CopyFrom(_tensor_info(t))
    for t in sig.outputs:
        sdef.outputs[t.name].CopyFrom(_tensor_info(t))
    return sdm


def _shape_json(info: TensorInfo) -> dict[str, Any]:
    if info.shape is None:
        return {"dim": [], "unknown_rank": True}
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape]
    return {"dim": dims, "unknown_rank": False}


def _tensors_json(infos: tuple[TensorInfo, ...]) -> dict[str, Any]:
    return {
        t.name: {"dtype": t.dt_name, "tensor_shape": _shape_json(t), "name": t.name} for t in infos
    }


def metadata_json(served: ServedModel) -> dict[str, Any]:
    """``GET /v1/models/NAME[/versions/V]/metadata`` as TensorFlow Serving answers it."""
    sig = served.model.signature
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    SIGNATURE_KEY: {
                        "inputs": _tensors_json(sig.inputs),
                        "outputs": _tensors_json(sig.outputs),
                        "method_name": sig.method_name,
                    }
                }
            }
        },
    }


def status_json(versions: list[ServedModel]) -> dict[str, Any]:
    """``GET /v1/models/NAME[/versions/V]``: every listed version is loaded and available."""
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for s in versions
        ]
    }

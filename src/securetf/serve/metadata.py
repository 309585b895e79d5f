"""Model status and metadata in TensorFlow Serving's shapes (protobuf for gRPC, JSON for REST).

A SavedModel's metadata is its serving MetaGraph's ``signature_def`` map as stored, which
is what TensorFlow Serving returns: every signature with its method name and graph tensor
names, and ``__saved_model_init_op``. Keras and TF Lite models have no MetaGraph; theirs
is made from their signature, tensors named by their keys.
"""

from __future__ import annotations

from typing import Any

from securetf.serve._savedmodel import SavedModelBackend
from securetf.serve.repository import ServedModel
from securetf.serve.signature import LoadedModel, TensorInfo

__all__ = ["metadata_json", "signature_def_map", "status_json"]


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


def signature_def_map(model: LoadedModel) -> Any:
    """The model's ``SignatureDefMap`` protobuf, as ``GetModelMetadata`` returns it."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    sdm = get_model_metadata_pb2.SignatureDefMap()
    if isinstance(model, SavedModelBackend):
        sdm.CopyFrom(model.signature_defs)
        return sdm
    for key, sig in model.signatures.items():
        sdef = sdm.signature_def[key]
        sdef.method_name = sig.method_name
        for t in sig.inputs:
            sdef.inputs[t.name].CopyFrom(_tensor_info(t))
        for t in sig.outputs:
            sdef.outputs[t.name].CopyFrom(_tensor_info(t))
    return sdm


def metadata_json(served: ServedModel) -> dict[str, Any]:
    """``GET /v1/models/NAME[/versions/V]/metadata`` as TensorFlow Serving answers it.

    The map printed as TF Serving prints it: proto field names, every field (``"dim": []``,
    ``"unknown_rank": true``), 64-bit integers as strings.
    """
    from google.protobuf import json_format  # type: ignore[import-untyped]

    sdm = json_format.MessageToDict(
        signature_def_map(served.model),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": sdm},
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

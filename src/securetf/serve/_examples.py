"""``tf.Example``s from a request: TF Serving's ``Input`` proto (gRPC) or JSON (REST).

REST's ``:classify``/``:regress`` body is ``{"signature_name": ..., "context": {...},
"examples": [{feature: value-or-list, ...}, ...]}``. A feature's values are all integers
(int64_list), numbers with at least one non-integer (float_list), or strings and
``{"b64": ...}`` (bytes_list). With a context, each example is the context's features
and its own (its own win), as TF Serving merges them: the context's serialized bytes
followed by the example's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from securetf.errors import UsageError
from securetf.serve.rest_codec import b64_bytes, is_b64

__all__ = ["examples_from_input", "examples_from_json"]

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _feature(name: str, value: Any) -> Any:
    from tensorflow.core.example import feature_pb2

    values = value if isinstance(value, list) else [value]
    values = [b64_bytes(v) if is_b64(v) else v for v in values]
    if not values:
        raise UsageError(f"feature {name!r} has no values")
    if all(isinstance(v, bytes | str) for v in values):
        raw = [v if isinstance(v, bytes) else v.encode() for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=raw))
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise UsageError(
            f"feature {name!r} must be numbers, or strings and b64 values, all of one kind"
        )
    if all(isinstance(v, int) for v in values):
        if any(not _INT64[0] <= v <= _INT64[1] for v in values):
            raise UsageError(f"feature {name!r} has values out of the int64 range")
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
    return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[float(v) for v in values]))


def _example(where: str, doc: Any) -> bytes:
    from tensorflow.core.example import example_pb2

    if not isinstance(doc, Mapping):
        raise UsageError(f"{where} must be an object of features")
    example = example_pb2.Example()
    for name, value in doc.items():
        example.features.feature[str(name)].CopyFrom(_feature(str(name), value))
    return bytes(example.SerializeToString())


def examples_from_json(doc: Mapping[str, Any]) -> list[bytes]:
    """The serialized examples of a REST classify/regress body (already parsed)."""
    unknown = sorted(set(doc) - {"signature_name", "context", "examples"})
    if unknown:
        raise UsageError(f"unknown fields in the request: {unknown}")
    examples = doc.get("examples")
    if not isinstance(examples, list) or not examples:
        raise UsageError("'examples' must be a non-empty list")
    context = _example("'context'", doc["context"]) if "context" in doc else b""
    return [context + _example(f"example {i}", e) for i, e in enumerate(examples)]


def examples_from_input(proto: Any) -> list[bytes]:
    """The serialized examples of a gRPC ``Input`` (``example_list``, ``..._with_context``)."""
    kind = proto.WhichOneof("kind")
    if kind == "example_list":
        return [bytes(e.SerializeToString()) for e in proto.example_list.examples]
    if kind == "example_list_with_context":
        listed = proto.example_list_with_context
        context = bytes(listed.context.SerializeToString())
        return [context + bytes(e.SerializeToString()) for e in listed.examples]
    raise UsageError("Input is empty: set input.example_list or input.example_list_with_context")

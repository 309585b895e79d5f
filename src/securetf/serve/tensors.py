"""``TensorProto`` <-> array, the way TensorFlow Serving encodes and reads them.

Outputs are encoded as TensorFlow Serving's ``Tensor::AsProtoField`` does by default: every
value in the typed field of its dtype (``float_val``, ``double_val``, ``int_val``,
``int64_val``, ``string_val``, ``bool_val``, ...), whatever the tensor's size, so clients
that read ``outputs[...].float_val`` work. With ``tensor_content=True`` (TF Serving's
``--enable_serialization_as_tensor_content``) numeric tensors travel as raw little-endian
bytes in ``tensor_content`` instead; strings stay in ``string_val`` either way (ADR 0012).

Inputs are sized from their shape before they are expanded: a one-value proto can claim a
shape of a trillion elements.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from securetf.errors import UsageError

__all__ = ["array_to_proto", "dtype_name", "proto_to_array"]

#: numpy dtype name -> (TensorProto typed field, numpy dtype its values are written as).
_FIELDS: dict[str, tuple[str, str]] = {
    "float32": ("float_val", "<f4"),
    "float64": ("double_val", "<f8"),
    "complex64": ("scomplex_val", "<f4"),  # real, imaginary interleaved
    "complex128": ("dcomplex_val", "<f8"),
    "float16": ("half_val", "<u2"),  # the bits, as TensorFlow stores them
    "int8": ("int_val", ""),
    "int16": ("int_val", ""),
    "int32": ("int_val", ""),
    "uint8": ("int_val", ""),
    "uint16": ("int_val", ""),
    "int64": ("int64_val", ""),
    "uint32": ("uint32_val", ""),
    "uint64": ("uint64_val", ""),
    "bool": ("bool_val", ""),
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _packed_fixed(proto: Any, field: str, values: npt.NDArray[Any]) -> None:
    """Fill a float/double field from raw bytes: the packed wire form, parsed by protobuf.

    Byte for byte what ``extend`` would give (protobuf writes packed repeated fields so),
    without a Python float per value on the way.
    """
    number = proto.DESCRIPTOR.fields_by_name[field].number
    raw = values.tobytes()
    proto.MergeFromString(_varint(number << 3 | 2) + _varint(len(raw)) + raw)


def _header(arr: npt.NDArray[Any]) -> Any:
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=tf.dtypes.as_dtype(arr.dtype).as_datatype_enum)
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    for size in arr.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _strings(arr: npt.NDArray[Any]) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist()]


def array_to_proto(arr: npt.NDArray[Any], *, tensor_content: bool = False) -> Any:
    """One output as a ``TensorProto``: typed fields, or ``tensor_content`` when asked."""
    if arr.dtype.kind in "OSU":
        arr = np.asarray(arr, dtype=object)
        proto = _header(arr)
        proto.string_val.extend(_strings(arr))
        return proto
    proto = _header(arr)
    spec = _FIELDS.get(arr.dtype.name)
    if tensor_content or spec is None:  # a dtype without a typed field of its own: raw bytes
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        proto.tensor_content = little.tobytes()
        return proto
    field, wire = spec
    flat = arr.ravel()
    if field == "half_val":
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif arr.dtype.kind == "c":
        _packed_fixed(proto, field, flat.astype(arr.dtype.newbyteorder("<")).view(wire))
    elif wire:
        _packed_fixed(proto, field, flat.astype(wire, copy=False))
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto


def dtype_name(proto: Any) -> str:
    """The ``DT_...`` name of a proto's dtype, for messages."""
    from tensorflow.core.framework import types_pb2

    try:
        return str(types_pb2.DataType.Name(proto.dtype))
    except ValueError:
        return f"dtype {int(proto.dtype)}"


def proto_to_array(proto: Any, *, max_bytes: int) -> npt.NDArray[Any]:
    """A ``TensorProto`` as an array, refusing any that would expand past ``max_bytes``."""
    import tensorflow as tf

    dims = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_shape.unknown_rank:
        raise UsageError("a tensor's shape must be known (unknown_rank is set)")
    if any(d < 0 for d in dims):
        raise UsageError("a tensor's shape has a negative dimension")
    try:
        tf_dtype = tf.dtypes.as_dtype(proto.dtype)
        dtype = np.dtype(tf_dtype.as_numpy_dtype)
    except (TypeError, ValueError, KeyError):  # KeyError: DT_VARIANT and others, no numpy
        dtype = None
    if dtype is None or tf_dtype in (tf.resource, tf.variant) or tf_dtype.is_quantized:
        raise UsageError(f"a tensor has an unsupported dtype ({dtype_name(proto)})")
    if int(np.prod(dims, dtype=object)) * max(dtype.itemsize, 1) > max_bytes:
        raise UsageError(f"a tensor would exceed the limit of {max_bytes} bytes")
    if dtype.kind == "O" and proto.tensor_content:
        raise UsageError("a DT_STRING tensor must carry its values in string_val")
    try:
        return np.asarray(tf.make_ndarray(proto))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"malformed tensor: {str(exc)[:200]}") from None

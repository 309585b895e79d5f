"""Outputs encoded byte for byte as TensorFlow encodes them; inputs sized before expansion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.python.framework import tensor_util

from securetf.errors import UsageError
from securetf.serve.tensors import array_to_proto, proto_to_array

DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
]
SHAPES = [(), (1,), (7,), (3, 4), (2, 0, 3)]


def _array(dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    values = np.random.default_rng(len(shape)).normal(size=shape) * 100
    if dtype == "bool":
        return np.asarray(values > 0)
    if dtype.startswith("complex"):
        return np.asarray(values + 1j * values[::-1] if values.ndim else values, dtype=dtype)
    return np.asarray(values).astype(dtype)


def _typed_reference(arr: np.ndarray[Any, Any]) -> Any:
    """``tf.make_tensor_proto``'s own encoding with every value in the typed field.

    For one value (or a dtype without a raw form) make_tensor_proto itself writes the typed
    field; for more it writes ``tensor_content``, and the typed form is what its own
    per-dtype append function (the code it runs for the typed case) writes.
    """
    ref = tf.make_tensor_proto(arr)
    if not ref.tensor_content:
        return ref
    typed = tensor_pb2.TensorProto(dtype=ref.dtype, tensor_shape=ref.tensor_shape)
    tensor_util.GetNumpyAppendFn(arr.dtype)(typed, arr.ravel())
    return typed


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_typed_fields_equal_tensorflows_encoding_byte_for_byte(
    dtype: str, shape: tuple[int, ...]
) -> None:
    arr = _array(dtype, shape)
    got = array_to_proto(arr)
    assert got.SerializeToString() == _typed_reference(arr).SerializeToString()
    assert not got.tensor_content
    np.testing.assert_array_equal(tf.make_ndarray(got), arr)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_content_equals_tensorflows_encoding_byte_for_byte(
    dtype: str, shape: tuple[int, ...]
) -> None:
    arr = _array(dtype, shape)
    got = array_to_proto(arr, tensor_content=True).SerializeToString()
    # TensorFlow's C++ Tensor::AsProtoTensorContent, what TF Serving's option uses...
    assert got == tf.io.serialize_tensor(tf.constant(arr)).numpy()
    # ...and make_tensor_proto's, where it chooses tensor_content itself.
    ref = tf.make_tensor_proto(arr)
    if ref.tensor_content:
        assert got == ref.SerializeToString()


@pytest.mark.parametrize("tensor_content", [False, True])
@pytest.mark.parametrize("shape", [(), (3,), (2, 2)], ids=str)
def test_strings_are_in_string_val_byte_for_byte(
    shape: tuple[int, ...], tensor_content: bool
) -> None:
    values = [b"a\x00", b"", "\u00e9".encode(), b"\xff\x00\x00", b"x"]
    n = int(np.prod(shape))
    arr = np.empty(n, dtype=object)
    arr[:] = values[:n]
    arr = arr.reshape(shape)
    got = array_to_proto(arr, tensor_content=tensor_content)
    assert got.SerializeToString() == tf.make_tensor_proto(arr).SerializeToString()
    assert got.SerializeToString() == tf.io.serialize_tensor(tf.constant(arr)).numpy()
    assert list(got.string_val) == values[:n]  # trailing NULs kept


def test_a_one_element_output_is_encoded_like_a_large_one() -> None:
    """The field does not depend on the size (it did: one int64 went to int64_val)."""
    for n in (1, 2, 1000):
        proto = array_to_proto(np.arange(n, dtype=np.int64))
        assert list(proto.int64_val) == list(range(n))


def test_inputs_round_trip_and_are_sized_before_expansion() -> None:
    arr = _array("float32", (3, 4))
    np.testing.assert_array_equal(proto_to_array(tf.make_tensor_proto(arr), max_bytes=48), arr)
    with pytest.raises(UsageError, match="exceed the limit"):
        proto_to_array(tf.make_tensor_proto(arr), max_bytes=47)
    bomb = tf.make_tensor_proto(np.float32(1.0))
    for size in (1 << 40, 4):
        bomb.tensor_shape.dim.add(size=size)
    with pytest.raises(UsageError, match="exceed the limit"):
        proto_to_array(bomb, max_bytes=1 << 20)


def _dims(*sizes: int) -> dict[str, Any]:
    return {"dim": [{"size": n} for n in sizes]}


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (tensor_pb2.TensorProto(dtype=0), "unsupported dtype"),
        (
            tensor_pb2.TensorProto(dtype=1, tensor_shape=_dims(3), tensor_content=b"12"),
            "malformed tensor",
        ),
        (
            tensor_pb2.TensorProto(dtype=7, tensor_shape=_dims(1), tensor_content=b"ab"),
            "string_val",
        ),
        (tensor_pb2.TensorProto(dtype=1, tensor_shape={"dim": [{"size": -2}]}), "negative"),
        (tensor_pb2.TensorProto(dtype=1, tensor_shape={"unknown_rank": True}), "unknown_rank"),
    ],
    ids=["invalid-dtype", "short-content", "string-content", "negative-dim", "unknown-rank"],
)
def test_malformed_protos_are_usage_errors(proto: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        proto_to_array(proto, max_bytes=1 << 20)

"""Bad input is refused the same way over gRPC and REST, for every dtype, strings included.

Each case is sent both ways: gRPC must answer ``INVALID_ARGUMENT`` (never ``UNKNOWN``, the
code of an exception that escaped) and REST 400, with messages that name the input; and the
server must still answer good requests after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2


@dataclass(frozen=True)
class Case:
    model: str
    input: str
    proto: Any  # the gRPC input tensor
    rest: dict[str, Any] | None  # the REST body, when JSON can say the same
    says: str  # the messages contain this


def _strings(*shape: int) -> Any:
    arr = np.empty(int(np.prod(shape)), dtype=object)
    arr[:] = [b"x"] * arr.size
    return tf.make_tensor_proto(arr.reshape(shape))


def _t(arr: Any) -> Any:
    return tf.make_tensor_proto(arr)


def _variant() -> Any:
    return tensor_pb2.TensorProto(dtype=21, tensor_shape={"dim": [{"size": 1}]})


CASES = {
    # A string model ([?] DT_STRING): what issue 17 found reaching the model or crashing.
    "string-scalar": Case("strings", "data", _strings(), {"inputs": "x"}, "rank 1"),
    "string-rank-2": Case("strings", "data", _strings(1, 1), {"inputs": [["x"]]}, "rank 1"),
    "string-empty-batch": Case("strings", "data", _strings(0), {"inputs": []}, "empty"),
    "float-to-string": Case(
        "strings", "data", _t(np.array([1.0], np.float32)), {"inputs": [1.0]}, "DT_STRING"
    ),
    "image-scalar": Case(
        "images", "image_bytes", _strings(), {"inputs": {"b64": "eA=="}}, "rank 1"
    ),
    "image-rank-2": Case(
        "images", "image_bytes", _strings(2, 1), {"inputs": [["x"], ["y"]]}, "rank 1"
    ),
    "scalar-model-batch": Case(
        "image", "image_bytes", _strings(2), {"inputs": ["x", "y"]}, "rank 0"
    ),
    # A float model ([?, 4] DT_FLOAT).
    "float-scalar": Case("kinds", "x", _t(np.float32(1)), {"inputs": 1.0}, "rank 2"),
    "float-rank-1": Case(
        "kinds",
        "x",
        _t(np.zeros(4, np.float32)),
        {"inputs": [0, 0, 0, 0]},
        "rank 2",
    ),
    "float-wrong-dim": Case(
        "kinds",
        "x",
        _t(np.zeros((1, 5), np.float32)),
        {"inputs": [[0] * 5]},
        "shape",
    ),
    "float-empty-batch": Case(
        "kinds", "x", _t(np.zeros((0, 4), np.float32)), {"inputs": []}, "empty"
    ),
    "string-to-float": Case("kinds", "x", _strings(1, 4), {"inputs": [["a"] * 4]}, "DT_FLOAT"),
    "double-to-float": Case("kinds", "x", _t(np.zeros((1, 4), np.float64)), None, "DT_FLOAT"),
    "int64-to-float": Case("kinds", "x", _t(np.zeros((1, 4), np.int64)), None, "DT_FLOAT"),
    "bool-to-float": Case(
        "kinds",
        "x",
        _t(np.zeros((1, 4), bool)),
        {"inputs": [[True] * 4]},
        "DT_FLOAT",
    ),
    "variant": Case("kinds", "x", _variant(), None, "dtype"),
    "no-dtype": Case("kinds", "x", tensor_pb2.TensorProto(), None, "dtype"),
}


def _grpc(stub: Any, case: Case) -> grpc.RpcError:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = case.model
    request.inputs[case.input].CopyFrom(case.proto)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    return info.value


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_grpc_refuses_with_invalid_argument(stub: Any, case: Case) -> None:
    error = _grpc(stub, case)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert case.says in error.details()
    if case.says != "dtype":
        assert repr(case.input) in error.details()


@pytest.mark.parametrize(
    "case", [c for c in CASES.values() if c.rest], ids=[k for k, c in CASES.items() if c.rest]
)
def test_rest_refuses_the_same_input_as_grpc(stub: Any, http: httpx.Client, case: Case) -> None:
    reply = http.post(f"/v1/models/{case.model}:predict", json=case.rest)
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]
    assert case.says in message
    assert repr(case.input) in message


def test_the_server_still_answers_after_bad_input(stub: Any, http: httpx.Client) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "strings"
    request.inputs["data"].CopyFrom(_t(np.array([b"ab", b"c"], object)))
    assert list(stub.Predict(request, timeout=30).outputs["length"].int_val) == [2, 1]
    reply = http.post("/v1/models/strings:predict", json={"inputs": ["ab"]})
    assert reply.json()["outputs"]["length"] == [2]

"""A model's own error reaches the client with its reason, and without the server's paths."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from securetf.errors import UsageError
from securetf.serve._model_errors import model_error, public_reason
from tests.serve.support import MAX_IMAGES


def _grpc_images(stub: Any, images: list[bytes]) -> grpc.RpcError:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "images"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(np.array(images, object)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    return info.value


def _rest_images(http: httpx.Client, images: list[bytes]) -> httpx.Response:
    body = {"instances": [{"b64": base64.b64encode(b).decode()} for b in images]}
    return http.post("/v1/models/images:predict", json=body)


def test_grpc_gets_the_ops_reason_as_invalid_argument(stub: Any) -> None:
    """Issue 17: the client saw only "Graph execution error:"; the reason was in the log."""
    error = _grpc_images(stub, [b"not an image"])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Unknown image file format" in error.details()
    assert "DecodeImage" in error.details()  # the failing node, as TF Serving names it
    assert "Graph execution error" not in error.details()


def test_rest_gets_the_ops_reason_as_400(http: httpx.Client) -> None:
    reply = _rest_images(http, [b"not an image"])
    assert reply.status_code == 400
    assert "Unknown image file format" in reply.json()["error"]


def test_a_server_path_in_the_models_error_is_not_sent(
    stub: Any, http: httpx.Client, model_dir: Path
) -> None:
    """The ``images`` model's refusal names its own directory, a path on the server."""
    too_many = [b"x"] * (MAX_IMAGES + 1)
    error = _grpc_images(stub, too_many)
    reply = _rest_images(http, too_many)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reply.status_code == 400
    for message in (error.details(), reply.json()["error"]):
        assert f"at most {MAX_IMAGES} images per request" in message  # the reason is there
        assert str(model_dir) not in message  # the path is not
        assert str(model_dir.parent) not in message
        assert "/tmp" not in message
        assert "<path>" in message


def test_python_stack_frames_of_the_server_are_dropped() -> None:
    """When TensorFlow has the defining code's stack, its frames name server files."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def checked(x: Any) -> Any:
        tf.debugging.assert_positive(x, message="values must be positive")
        return x

    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        checked(tf.constant([-1.0]))
    raw = str(info.value)
    assert __file__ in raw or "File " in raw  # the frames were there...
    error = model_error(info.value)
    assert isinstance(error, UsageError)
    message = str(error)
    assert "values must be positive" in message
    assert __file__ not in message  # ...and are not passed on
    assert "File " not in message
    assert "Graph execution error" not in message
    assert "[Op:" not in message


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (
            "Graph execution error:\n\nDetected at node D defined at (most recent call last):\n"
            "<stack traces unavailable>\nUnknown image file format.\n"
            "\t [[{{node D}}]] [Op:__inference_x_1]",
            "Unknown image file format. [[{{node D}}]]",
        ),
        ("cannot open /srv/models/m/1/assets/vocab.txt: gone", "cannot open <path>: gone"),
        ("ratio 1/2 of a/b", "ratio 1/2 of a/b"),
        ("", "no reason given"),
    ],
)
def test_public_reason(raw: str, want: str) -> None:
    assert public_reason(raw) == want


def test_a_long_reason_is_cut() -> None:
    assert len(public_reason("x" * 10_000)) == 1000

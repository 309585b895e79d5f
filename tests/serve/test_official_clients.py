"""The server driven as TensorFlow Serving's own example clients drive TF Serving.

gRPC: the official ``tensorflow-serving-api`` stubs, inputs from ``tf.make_tensor_proto``
(scalar and batched), outputs read straight from ``float_val``/``int64_val``/``string_val``
as those clients read them, not through ``tf.make_ndarray``. REST: the same requests as
JSON. The server fills the typed fields by default, and ``tensor_content`` only when
started with ``--tensor-content``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serve.support import ServerProcess, TestCa, open_channel, rows, running_server


@pytest.fixture(scope="module")
def content_server(
    model_dir: Path, policy_ca: TestCa, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A second server, started with ``--tensor-content``."""
    tmp = tmp_path_factory.mktemp("content-server")
    with running_server(model_dir, policy_ca, tmp, ["--tensor-content"]) as proc:
        yield proc


def image_bytes(seed: int, fmt: str = "png") -> tuple[bytes, np.ndarray[Any, Any]]:
    """An image file and the mean colour the model must answer for it."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    data = bytes(encode(pixels).numpy())
    decoded = tf.io.decode_image(data, channels=3).numpy().astype(np.float32)
    return data, decoded.mean(axis=(0, 1))


def predict(stub: Any, model: str, inputs: dict[str, Any], **kwargs: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, **kwargs))
    return stub.Predict(request, 30.0)


# -- gRPC, typed fields ------------------------------------------------------------------
def test_resnet_style_client_reads_float_val_of_a_batch_of_one(stub: Any) -> None:
    """TF Serving's resnet_client_grpc.py: image bytes with shape=[1], float_val read."""
    data, mean = image_bytes(1)
    result = predict(stub, "images", {"image_bytes": data}, shape=[1])
    assert len(result.outputs["mean_rgb"].float_val) == 3
    np.testing.assert_allclose(result.outputs["mean_rgb"].float_val, mean, rtol=1e-5)
    assert list(result.outputs["channel"].int64_val) == [int(np.argmax(mean))]
    assert not result.outputs["mean_rgb"].tensor_content


def test_jpeg_era_client_sends_a_scalar(stub: Any) -> None:
    """The older client sent the JPEG as a scalar string to a scalar-input signature."""
    data, mean = image_bytes(2, "jpeg")
    result = predict(stub, "image", {"image_bytes": data})
    assert [d.size for d in result.outputs["mean_rgb"].tensor_shape.dim] == [3]
    np.testing.assert_allclose(result.outputs["mean_rgb"].float_val, mean, rtol=1e-5)
    assert list(result.outputs["channel"].int64_val) == [int(np.argmax(mean))]


def test_a_batch_of_images_fills_every_value(stub: Any) -> None:
    pairs = [image_bytes(seed) for seed in range(3)]
    data = np.array([d for d, _ in pairs], dtype=object)
    result = predict(stub, "images", {"image_bytes": data})
    means = np.array([m for _, m in pairs])
    got = np.array(result.outputs["mean_rgb"].float_val).reshape(3, 3)
    np.testing.assert_allclose(got, means, rtol=1e-5)
    assert list(result.outputs["channel"].int64_val) == [int(i) for i in means.argmax(axis=1)]


def test_every_dtype_in_its_typed_field(stub: Any) -> None:
    x = rows(5, seed=3)
    out = predict(stub, "kinds", {"x": x}).outputs
    np.testing.assert_array_equal(np.array(out["scores"].float_val).reshape(5, 4), x * 2)
    assert list(out["label"].int64_val) == x.argmax(axis=1).tolist()
    assert list(out["count"].int_val) == (x > 0).sum(axis=1).tolist()
    assert list(out["positive"].bool_val) == (x[:, 0] > 0).tolist()
    np.testing.assert_allclose(out["total"].double_val, x.astype(np.float64).sum(axis=1))
    assert list(out["sign"].string_val) == [b"plus" if v > 0 else b"minus" for v in x[:, 0]]
    for proto in out.values():
        assert not proto.tensor_content


@pytest.mark.parametrize("n", [1, 2, 7])
def test_the_field_does_not_depend_on_the_batch_size(stub: Any, n: int) -> None:
    out = predict(stub, "kinds", {"x": rows(n, seed=n)}).outputs
    assert len(out["label"].int64_val) == n
    assert len(out["scores"].float_val) == 4 * n


def test_outputs_equal_tensorflows_own_typed_encoding(stub: Any) -> None:
    from tests.serve.test_tensors import _typed_reference

    x = rows(3, seed=4)
    out = predict(stub, "kinds", {"x": x}).outputs
    assert out["scores"].SerializeToString() == _typed_reference(x * 2).SerializeToString()
    label = x.argmax(axis=1).astype(np.int64)
    assert out["label"].SerializeToString() == _typed_reference(label).SerializeToString()


# -- gRPC, --tensor-content ----------------------------------------------------------------
def test_tensor_content_server_sends_raw_bytes(content_server: ServerProcess) -> None:
    x = rows(3, seed=5)
    with open_channel(content_server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        out = predict(stub, "kinds", {"x": x}).outputs
    assert out["scores"].SerializeToString() == tf.make_tensor_proto(x * 2).SerializeToString()
    assert not out["scores"].float_val
    label = x.argmax(axis=1).astype(np.int64)
    assert out["label"].tensor_content == label.tobytes()
    assert list(out["sign"].string_val)  # strings stay readable in string_val
    np.testing.assert_array_equal(tf.make_ndarray(out["total"]), x.astype(np.float64).sum(1))


# -- REST equivalents ------------------------------------------------------------------------
def test_rest_resnet_style_client(http: httpx.Client) -> None:
    """TF Serving's resnet_client.py: ``{"instances": [{"b64": ...}]}``."""
    data, mean = image_bytes(1)
    body = {"instances": [{"b64": base64.b64encode(data).decode()}]}
    reply = http.post("/v1/models/images:predict", json=body)
    assert reply.status_code == 200, reply.text
    (prediction,) = reply.json()["predictions"]
    np.testing.assert_allclose(prediction["mean_rgb"], mean, rtol=1e-5)
    assert prediction["channel"] == int(np.argmax(mean))


def test_rest_scalar_input_in_columnar_form(http: httpx.Client) -> None:
    data, mean = image_bytes(2, "jpeg")
    body = {"inputs": {"b64": base64.b64encode(data).decode()}}
    reply = http.post("/v1/models/image:predict", json=body)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["outputs"]["mean_rgb"], mean, rtol=1e-5)


def test_rest_every_dtype(http: httpx.Client) -> None:
    x = rows(2, seed=6)
    reply = http.post("/v1/models/kinds:predict", json={"instances": x.tolist()})
    assert reply.status_code == 200, reply.text
    first = reply.json()["predictions"][0]
    assert first["label"] == int(x[0].argmax())
    assert first["positive"] is bool(x[0, 0] > 0)
    assert first["sign"] in ("plus", "minus")

"""gRPC through the official tensorflow-serving-api stub, over TLS to the policy's name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from securetf.client import ServingClient
from tests.serve.support import POLICY, SERVICE, ServerProcess, rows


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    creds = grpc.ssl_channel_credentials(root_certificates=server.ca_pem)
    options = [("grpc.ssl_target_name_override", f"{SERVICE}.{POLICY}")]
    with grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", creds, options=options) as ch:
        yield ch


def _predict(channel: grpc.Channel, name: str, inputs: dict[str, Any], version: int = 0) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version:
        request.model_spec.version.value = version
    for k, v in inputs.items():
        request.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=30)


def _input_name(channel: grpc.Channel, name: str) -> str:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.GetModelMetadata(request, timeout=30)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sdm)
    sig = sdm.signature_def["serving_default"]
    ((key, info),) = sig.inputs.items()
    assert [d.size for d in info.tensor_shape.dim] == [-1, 4]
    return str(key)


@pytest.mark.parametrize(("name", "version"), [("dense", 2), ("kdense", 3), ("ldense", 1)])
def test_official_stub_predictions_equal_rest_and_in_process(
    channel: grpc.Channel, server: ServerProcess, name: str, version: int
) -> None:
    from tests.serve.test_rest import in_process

    x = rows(4, seed=10 + version)
    response = _predict(channel, name, {_input_name(channel, name): x})
    assert response.model_spec.version.value == version
    ((_, out),) = response.outputs.items()
    got = tf.make_ndarray(out)
    np.testing.assert_allclose(got, in_process(server.model_dir, name, version, x), atol=1e-6)


def test_sdk_grpc_predict_selects_versions(server: ServerProcess) -> None:
    assert server.ca_pem is not None
    with ServingClient(
        server.url,
        ca_pem=server.ca_pem,
        service=SERVICE,
        policy=POLICY,
        grpc_address=f"127.0.0.1:{server.grpc_port}",
    ) as client:
        x = rows(2)
        name = next(
            iter(
                client.metadata("dense", version=1)["metadata"]["signature_def"]["signature_def"][
                    "serving_default"
                ]["inputs"]
            )
        )
        v1 = client.grpc_predict("dense", {name: x}, version=1)["output_0"]
        rest_v1 = client.predict("dense", x, version=1)
    np.testing.assert_allclose(v1, rest_v1, atol=1e-6)


def test_model_status(channel: grpc.Channel) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "dense"
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    assert [s.version for s in response.model_version_status] == [2, 1]
    assert {s.state for s in response.model_version_status} == {
        get_model_status_pb2.ModelVersionStatus.AVAILABLE
    }


def test_unknown_model_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _predict(channel, "nosuch", {"x": np.zeros((1, 4), np.float32)})
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(np.zeros((1, 5), np.float32), id="wrong-shape"),
        pytest.param(np.zeros((1, 4), np.float64), id="wrong-dtype"),
    ],
)
def test_bad_tensors_are_invalid_argument(channel: grpc.Channel, value: Any) -> None:
    name = _input_name(channel, "dense")
    with pytest.raises(grpc.RpcError) as info:
        _predict(channel, "dense", {name: value})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_tensor_claiming_a_huge_shape_is_refused_before_expansion(
    channel: grpc.Channel, server: ServerProcess
) -> None:
    name = _input_name(channel, "dense")
    bomb = tf.make_tensor_proto(np.float32(1.0))  # one value...
    bomb.tensor_shape.Clear()
    for size in (1_000_000_000, 4):  # ...claiming 4e9 elements (16 GB)
        bomb.tensor_shape.dim.add(size=size)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dense"
    request.inputs[name].CopyFrom(bomb)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert server.proc is not None
    assert server.proc.poll() is None

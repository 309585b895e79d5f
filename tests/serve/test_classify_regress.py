"""Classify, Regress and MultiInference (gRPC) and ``:classify``/``:regress`` (REST) on a
SavedModel exported as an Estimator exports one; metadata as TensorFlow Serving returns it.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format  # type: ignore[import-untyped]
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from tests.serve.support import LABELS, WEIGHTS

CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"
XS = [[1.0, 2.0], [-3.0, 0.5], [0.25, -1.0]]


def _example(x: list[float] | None = None, scale: float | None = None) -> Any:
    example = example_pb2.Example()
    if x is not None:
        example.features.feature["x"].float_list.value.extend(x)
    if scale is not None:
        example.features.feature["scale"].float_list.value.append(scale)
    return example


def _expected_scores(xs: list[list[float]], scale: float = 1.0) -> np.ndarray[Any, Any]:
    logits = np.array(xs, np.float32) @ np.array(WEIGHTS, np.float32) * scale
    return np.asarray(tf.nn.softmax(logits).numpy())


def _expected_values(xs: list[list[float]], scale: float = 1.0) -> list[float]:
    return [float(v) for v in np.array(xs, np.float32).sum(axis=1) * np.float32(scale)]


def _input(request: Any, xs: list[list[float]], context_scale: float | None = None) -> None:
    if context_scale is None:
        request.input.example_list.examples.extend(_example(x) for x in xs)
    else:
        listed = request.input.example_list_with_context
        listed.context.CopyFrom(_example(scale=context_scale))
        listed.examples.extend(_example(x) for x in xs)


def _classify(stub: Any, signature: str = "", **kwargs: Any) -> Any:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = kwargs.pop("model", "census")
    request.model_spec.signature_name = signature
    _input(request, kwargs.pop("xs", XS), kwargs.pop("context_scale", None))
    return stub.Classify(request, timeout=30)


def _abort(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# -- gRPC ----------------------------------------------------------------------------------
@pytest.mark.parametrize("signature", ["", "serving_default", "classify_x"])
def test_grpc_classify(stub: Any, signature: str) -> None:
    response = _classify(stub, signature)
    assert response.model_spec.signature_name == (signature or "serving_default")
    assert response.model_spec.version.value == 1
    want = _expected_scores(XS)
    assert len(response.result.classifications) == len(XS)
    for got, scores in zip(response.result.classifications, want, strict=True):
        assert [c.label for c in got.classes] == [label.decode() for label in LABELS]
        np.testing.assert_allclose([c.score for c in got.classes], scores, rtol=1e-6)


def test_grpc_classify_with_context(stub: Any) -> None:
    response = _classify(stub, xs=XS[:2], context_scale=3.0)
    got = [[c.score for c in r.classes] for r in response.result.classifications]
    np.testing.assert_allclose(got, _expected_scores(XS[:2], 3.0), rtol=1e-6)


def test_grpc_regress(stub: Any) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "census"
    request.model_spec.signature_name = "regress_x"
    _input(request, XS, context_scale=2.0)
    response = stub.Regress(request, timeout=30)
    got = [r.value for r in response.result.regressions]
    np.testing.assert_allclose(got, _expected_values(XS, 2.0), rtol=1e-6)
    assert response.model_spec.signature_name == "regress_x"


def test_grpc_multi_inference_runs_every_task_on_the_same_examples(stub: Any) -> None:
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x", CLASSIFY), ("regress_x", REGRESS)):
        task = request.tasks.add()
        task.model_spec.name = "census"
        task.model_spec.signature_name = signature
        task.method_name = method
    _input(request, XS)
    response = stub.MultiInference(request, timeout=30)
    classified, regressed = response.results
    assert classified.model_spec.signature_name == "classify_x"
    scores = [
        [c.score for c in r.classes] for r in classified.classification_result.classifications
    ]
    np.testing.assert_allclose(scores, _expected_scores(XS), rtol=1e-6)
    values = [r.value for r in regressed.regression_result.regressions]
    np.testing.assert_allclose(values, _expected_values(XS), rtol=1e-6)


def _multi(stub: Any, tasks: list[tuple[str, str, str]]) -> grpc.RpcError:
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        task.method_name = method
    _input(request, XS)
    return _abort(lambda: stub.MultiInference(request, timeout=30))


@pytest.mark.parametrize(
    ("tasks", "says"),
    [
        ([("census", "classify_x", CLASSIFY), ("kinds", "", REGRESS)], "Expected regression"),
        ([("census", "classify_x", CLASSIFY), ("census", "classify_x", CLASSIFY)], "Duplicate"),
        ([("census", "regress_x", CLASSIFY)], "Expected classification signature"),
        ([("census", "predict_x", "tensorflow/serving/predict")], "Unsupported"),
        ([], "no tasks"),
    ],
    ids=["two-models", "duplicate", "wrong-method", "predict-task", "no-tasks"],
)
def test_grpc_multi_inference_refusals(
    stub: Any, tasks: list[tuple[str, str, str]], says: str
) -> None:
    error = _multi(stub, tasks)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in error.details()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"model": "kinds"}, "Expected classification signature method_name"),
        ({"signature": "regress_x"}, "Expected classification signature method_name"),
        ({"signature": "nosuch"}, "'nosuch' not found"),
        ({"xs": []}, "Input is empty"),
        ({"xs": [[1.0, 2.0, 3.0]]}, "the model refused the input"),
    ],
    ids=["predict-model", "regress-signature", "unknown-signature", "no-examples", "bad-feature"],
)
def test_grpc_classify_refusals(stub: Any, kwargs: dict[str, Any], says: str) -> None:
    error = _abort(lambda: _classify(stub, **kwargs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert says in error.details()


def test_grpc_predict_selects_a_signature_by_name(stub: Any) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "census"
    request.model_spec.signature_name = "predict_x"
    serialized = np.array([_example(x).SerializeToString() for x in XS], dtype=object)
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized))
    response = stub.Predict(request, timeout=30)
    assert response.model_spec.signature_name == "predict_x"
    logits = np.array(response.outputs["logits"].float_val).reshape(len(XS), 2)
    np.testing.assert_allclose(logits, np.array(XS) @ np.array(WEIGHTS), rtol=1e-6)


# -- REST ----------------------------------------------------------------------------------
def test_rest_classify(http: httpx.Client) -> None:
    body = {"examples": [{"x": x} for x in XS]}
    reply = http.post("/v1/models/census:classify", json=body)
    assert reply.status_code == 200, reply.text
    result = reply.json()["result"]
    want = _expected_scores(XS)
    for pairs, scores in zip(result, want, strict=True):
        assert [label for label, _ in pairs] == ["neg", "pos"]
        np.testing.assert_allclose([s for _, s in pairs], scores, rtol=1e-6)


def test_rest_regress_with_context_and_a_version(http: httpx.Client) -> None:
    body = {"signature_name": "regress_x", "context": {"scale": 0.5}, "examples": [{"x": XS[0]}]}
    reply = http.post("/v1/models/census/versions/1:regress", json=body)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["result"], _expected_values(XS[:1], 0.5), rtol=1e-6)


def test_rest_and_grpc_classify_agree(stub: Any, http: httpx.Client) -> None:
    grpc_scores = [[c.score for c in r.classes] for r in _classify(stub).result.classifications]
    rest = http.post("/v1/models/census:classify", json={"examples": [{"x": x} for x in XS]})
    assert [[s for _, s in pairs] for pairs in rest.json()["result"]] == grpc_scores


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        (":classify", {"examples": []}, "non-empty"),
        (":classify", {"examples": [{"x": [True, False]}]}, "feature 'x'"),
        (":classify", {"examples": [{"x": [1.0, "a"]}]}, "feature 'x'"),
        (":classify", {"examples": [{"x": [1, 2]}]}, "the model refused the input"),
        (":classify", {"examples": [{"x": []}]}, "no values"),
        (":classify", {"examples": [[1.0, 2.0]]}, "must be an object"),
        (":classify", {"instances": [1]}, "unknown fields"),
        (":regress", {"examples": [{"x": [1.0, 2.0]}]}, "Expected regression signature"),
        (":classify", {"signature_name": "nosuch", "examples": [{}]}, "not found"),
    ],
    ids=[
        "empty",
        "booleans",
        "mixed",
        "ints-for-floats",
        "no-values",
        "not-an-object",
        "predict-body",
        "classify-signature",
        "unknown-signature",
    ],
)
def test_rest_refusals_are_400(http: httpx.Client, path: str, body: Any, says: str) -> None:
    reply = http.post(f"/v1/models/census{path}", json=body)
    assert reply.status_code == 400, reply.text
    assert says in reply.json()["error"]


def test_rest_classify_on_a_predict_model_is_400_not_405(http: httpx.Client) -> None:
    reply = http.post("/v1/models/dense:classify", json={"examples": [{"x": [1.0]}]})
    assert reply.status_code == 400
    assert "Expected classification signature method_name" in reply.json()["error"]


# -- metadata ------------------------------------------------------------------------------
def _grpc_metadata(stub: Any, name: str) -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert stub.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(sdm)
    return sdm


def test_metadata_is_the_saved_models_own_signature_defs(
    stub: Any, http: httpx.Client, model_dir: Any
) -> None:
    """As TF Serving: the stored map, with __saved_model_init_op and graph tensor names."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((model_dir / "kinds" / "1" / "saved_model.pb").read_bytes())
    stored = saved.meta_graphs[0].signature_def
    sdm = _grpc_metadata(stub, "kinds")
    assert set(sdm.signature_def) == {"serving_default", "__saved_model_init_op"}
    for key in stored:
        assert sdm.signature_def[key] == stored[key]
    assert sdm.signature_def["serving_default"].inputs["x"].name == "serving_default_x:0"
    init = sdm.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"]
    assert init.name  # the init op's node name
    rest = http.get("/v1/models/kinds/metadata").json()["metadata"]["signature_def"]
    assert rest == json_format.MessageToDict(
        sdm, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    assert rest["signature_def"]["serving_default"]["inputs"]["x"]["name"] == (
        "serving_default_x:0"
    )


def test_metadata_of_an_estimator_style_model(stub: Any, http: httpx.Client) -> None:
    sdm = _grpc_metadata(stub, "census")
    methods = {k: v.method_name for k, v in sdm.signature_def.items()}
    assert methods == {
        "serving_default": CLASSIFY,
        "classify_x": CLASSIFY,
        "regress_x": REGRESS,
        "predict_x": "tensorflow/serving/predict",
    }
    assert sdm.signature_def["classify_x"].inputs["inputs"].name == "tf_example:0"
    rest = http.get("/v1/models/census/metadata").json()
    classify = rest["metadata"]["signature_def"]["signature_def"]["classify_x"]
    assert classify["method_name"] == CLASSIFY
    assert classify["inputs"]["inputs"]["dtype"] == "DT_STRING"
    assert classify["outputs"]["scores"]["tensor_shape"]["dim"][1]["size"] == "2"


def test_feature_pb2_is_what_examples_are_made_of() -> None:
    """The REST codec writes the same bytes as the proto API for the same features."""
    from securetf.serve._examples import examples_from_json

    (got,) = examples_from_json({"examples": [{"x": [1.5, 2.0], "n": 3, "s": "a"}]})
    want = example_pb2.Example()
    want.features.feature["x"].CopyFrom(feature_pb2.Feature(float_list={"value": [1.5, 2.0]}))
    want.features.feature["n"].CopyFrom(feature_pb2.Feature(int64_list={"value": [3]}))
    want.features.feature["s"].CopyFrom(feature_pb2.Feature(bytes_list={"value": [b"a"]}))
    assert example_pb2.Example.FromString(got) == want

"""REST through a real TLS server: predictions equal in-process ones, versions, metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from securetf.client import ServingClient
from securetf.errors import NotFoundError
from tests.serve.support import POLICY, SERVICE, ServerProcess, rows


def in_process(model_dir: Path, name: str, version: int, x: np.ndarray[Any, Any]) -> Any:
    """The model's own prediction, without the server, by each format's own loader."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    vdir = model_dir / name / str(version)
    if (vdir / "saved_model.pb").exists():
        fn = tf.saved_model.load(str(vdir)).signatures["serving_default"]
        ((arg, _),) = fn.structured_input_signature[1].items()
        return fn(**{arg: tf.constant(x)})["output_0"].numpy()
    if (vdir / "model.keras").exists():
        return np.asarray(keras.saving.load_model(vdir / "model.keras")(x, training=False))
    runner = Interpreter(model_path=str(vdir / "model.tflite")).get_signature_runner()
    (out,) = runner(**{next(iter(runner.get_input_details())): x}).values()
    return out


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    assert server.ca_pem is not None
    with ServingClient(server.url, ca_pem=server.ca_pem, service=SERVICE, policy=POLICY) as c:
        yield c


@pytest.mark.parametrize(("name", "version"), [("dense", 2), ("kdense", 3), ("ldense", 1)])
def test_predictions_equal_in_process_for_each_format(
    client: ServingClient, model_dir: Path, name: str, version: int
) -> None:
    x = rows(5, seed=version)
    want = in_process(model_dir, name, version, x)
    got_rows = np.asarray(client.predict(name, x), dtype=np.float32)
    got_cols = np.asarray(client.predict_columns(name, x), dtype=np.float32)
    np.testing.assert_allclose(got_rows, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_cols, want, rtol=1e-6, atol=1e-6)


def test_newest_version_by_default_and_a_specific_one_on_request(
    client: ServingClient, model_dir: Path
) -> None:
    x = rows(3)
    v1, v2 = in_process(model_dir, "dense", 1, x), in_process(model_dir, "dense", 2, x)
    assert not np.allclose(v1, v2)
    np.testing.assert_allclose(client.predict("dense", x), v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(client.predict("dense", x, version=1), v1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(client.predict("dense", x, version=2), v2, rtol=1e-6, atol=1e-6)
    with pytest.raises(NotFoundError, match="Specific"):
        client.predict("dense", x, version=9)


def test_named_inputs_and_outputs_in_both_formats(client: ServingClient) -> None:
    a = [[1.0, 2.0], [3.0, 4.0]]
    b = [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
    predictions = client.predict("multi", [{"a": a[i], "b": b[i]} for i in range(2)])
    outputs = client.predict_columns("multi", {"a": a, "b": b})
    assert (
        [p["twice"] for p in predictions]
        == outputs["twice"]
        == [
            [2.0, 4.0, 1.0, 1.0, 1.0],
            [6.0, 8.0, 2.0, 2.0, 2.0],
        ]
    )
    assert [p["score"] for p in predictions] == outputs["score"]


def test_status_lists_every_version_newest_first(client: ServingClient) -> None:
    status = client.status("dense")["model_version_status"]
    assert [s["version"] for s in status] == ["2", "1"]
    assert all(s["state"] == "AVAILABLE" for s in status)
    assert client.status("dense", version=1)["model_version_status"][0]["version"] == "1"


@pytest.mark.parametrize(("name", "dim"), [("dense", "4"), ("kdense", "4"), ("ldense", "4")])
def test_metadata_has_the_signature(client: ServingClient, name: str, dim: str) -> None:
    meta = client.metadata(name)
    assert meta["model_spec"]["name"] == name
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    ((_, tensor),) = sig["inputs"].items()
    assert tensor["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == ["-1", dim]
    ((_, out),) = sig["outputs"].items()
    assert [d["size"] for d in out["tensor_shape"]["dim"]] == ["-1", "3"]
    assert sig["method_name"] == "tensorflow/serving/predict"


def test_metadata_of_a_version(client: ServingClient) -> None:
    assert client.metadata("dense", version=1)["model_spec"]["version"] == "1"

"""TensorFlow Serving's binary encoding in REST: ``{"b64": ...}`` in place of a string input,
and ``{"b64": ...}`` answers for string outputs named ``*_bytes``; byte for byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from securetf.client import ServingClient
from securetf.errors import UsageError
from securetf.serve.rest_codec import encode_response, parse_predict
from securetf.serve.signature import Signature, TensorInfo
from tests.serve.support import POLICY, SERVICE, ServerProcess

#: Binary values a text encoding would damage: NUL bytes (also trailing), invalid UTF-8.
BLOBS = [b"\x00\xff\xfe binary \x00", b"\x89PNG\r\n\x1a\n\x00\x00", b""]
SIG = Signature(
    inputs=(TensorInfo("data", np.dtype(object), (None,)),),
    outputs=(
        TensorInfo("echo_bytes", np.dtype(object), (None,)),
        TensorInfo("length", np.dtype(np.int32), (None,)),
    ),
)


class Echo:
    """A model of signature ``SIG`` for the codec alone (never called)."""

    format = "test"
    signature = SIG

    @property
    def signatures(self) -> Mapping[str, Signature]:
        return {"serving_default": SIG}

    def predict(self, inputs: Mapping[str, Any], signature: str = "serving_default") -> Any:
        raise AssertionError("the codec does not call the model")


def b64(raw: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(raw).decode()}


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[ServingClient]:
    assert server.ca_pem is not None
    with ServingClient(server.url, ca_pem=server.ca_pem, service=SERVICE, policy=POLICY) as c:
        yield c


def test_row_format_b64_in_and_out_byte_for_byte(client: ServingClient) -> None:
    predictions = client.predict("strings", [b64(b) for b in BLOBS])
    assert [p["length"] for p in predictions] == [len(b) for b in BLOBS]
    assert [p["echo_bytes"] for p in predictions] == [b64(b) for b in BLOBS]


def test_columnar_format_b64_named_and_unnamed(client: ServingClient) -> None:
    for inputs in ([b64(b) for b in BLOBS], {"data": [b64(b) for b in BLOBS]}):
        outputs = client.predict_columns("strings", inputs)
        assert outputs == {"length": [len(b) for b in BLOBS], "echo_bytes": [b64(b) for b in BLOBS]}


def test_plain_strings_still_work_and_mix_with_b64(client: ServingClient) -> None:
    predictions = client.predict("strings", ["héllo", b64(b"\x00")])
    assert [p["length"] for p in predictions] == [len("héllo".encode()), 1]
    assert predictions[0]["echo_bytes"] == b64("héllo".encode())


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        ("strings", {"instances": [{"b64": "not base64!"}]}, "not valid base64"),
        ("strings", {"instances": [{"b64": 7}]}, "base64 string"),
        ("strings", {"instances": [1.5]}, "expects DT_STRING values (strings or b64)"),
        ("dense", {"instances": [[b64(b"abcd")] * 4]}, "got b64"),
    ],
)
def test_malformed_or_misplaced_b64_is_a_400(
    server: ServerProcess, model: str, body: Any, message: str
) -> None:
    with server.http() as http:
        response = http.post(f"/v1/models/{model}:predict", content=json.dumps(body).encode())
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_codec_keeps_trailing_nul_bytes_and_only_single_key_b64_objects() -> None:
    body = json.dumps({"instances": [b64(b"a\x00\x00")]}).encode()
    (arr,) = parse_predict(body, Echo()).inputs.values()
    assert arr.dtype == object
    assert arr.tolist() == [b"a\x00\x00"]
    # An object with more keys than "b64" is not a binary value.
    other = json.dumps({"instances": [{"b64": "AA==", "x": 1}]}).encode()
    with pytest.raises(UsageError, match=r"expects DT_STRING values \(strings or b64\), got dict"):
        parse_predict(other, Echo())


def test_codec_answers_b64_only_for_bytes_outputs() -> None:
    outputs = {
        "echo_bytes": np.array([b"\x00\xff"], dtype=object),
        "length": np.array([2], dtype=np.int32),
    }
    doc = json.loads(encode_response(outputs, SIG, row_format=False))
    assert doc == {"outputs": {"echo_bytes": [b64(b"\x00\xff")], "length": [2]}}
    text_sig = Signature(inputs=SIG.inputs, outputs=(TensorInfo("text", np.dtype(object), None),))
    doc = json.loads(
        encode_response({"text": np.array([b"abc"], dtype=object)}, text_sig, row_format=True)
    )
    assert doc == {"predictions": ["abc"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"instances": [NaN]}', "not valid JSON"),  # json took it; strict JSON does not
        (b'{"instances": [1e999999]}', "not valid JSON"),
        (b'{"instances": [' + b"[" * 2000 + b"]" * 2000 + b"]}", "not valid JSON"),
        (b'{"instances": [{"b64": "%%%"}]}', "not valid base64"),
        (b'{"instances": [{"b64": 5}]}', "base64 string"),
    ],
    ids=["nan", "huge-float", "deep", "bad-b64", "b64-not-a-string"],
)
def test_codec_refuses_what_strict_json_refuses(body: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_predict(body, Echo())

"""Malformed requests get TensorFlow Serving's ``{"error": ...}`` and a 4xx, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.serve.support import ServerProcess

BAD_BODIES = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'{"instances": []}', id="no-instances"),
    pytest.param(b'{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', id="both-formats"),
    pytest.param(b'{"something": 1}', id="neither-format"),
    pytest.param(b'{"instances": [[1, 2, 3]]}', id="wrong-width"),
    pytest.param(b'{"instances": [[1, 2, 3, 4], [1, 2]]}', id="ragged"),
    pytest.param(b'{"instances": [["a", "b", "c", "d"]]}', id="strings-for-floats"),
    pytest.param(b'{"instances": [[null, 1, 2, 3]]}', id="null"),
    pytest.param(b'{"instances": [[[1, 2, 3, 4]]]}', id="wrong-rank"),
    pytest.param(b'{"instances": [{"nope": [1, 2, 3, 4]}]}', id="unknown-input"),
    pytest.param(b'{"inputs": {"a": 1}}', id="columns-unknown-input"),
    pytest.param(b'{"instances": [[1, 2, 3, 4]], "signature_name": "other"}', id="signature"),
    pytest.param(b"[" * 100000 + b"]" * 100000, id="deep-nesting"),
    pytest.param(b'{"instances": 5}', id="instances-not-a-list"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_predict_is_a_400_with_the_error_shape(
    server: ServerProcess, body: bytes
) -> None:
    with server.http() as http:
        r = http.post("/v1/models/dense:predict", content=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert r.json()["error"]


def test_multi_input_row_without_names_is_a_400(server: ServerProcess) -> None:
    with server.http() as http:
        r = http.post("/v1/models/multi:predict", json={"instances": [[1, 2]]})
    assert r.status_code == 400
    assert "name them" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/nosuch:predict",
        "/v1/models/dense/versions/7:predict",
    ],
)
def test_unknown_model_or_version_is_a_404(server: ServerProcess, path: str) -> None:
    with server.http() as http:
        r = http.post(path, json={"instances": [[1, 2, 3, 4]]})
    assert r.status_code == 404
    assert r.json()["error"].startswith("Servable not found for request")


@pytest.mark.parametrize(
    "path", ["/v1/models/nosuch", "/v1/models/dense/versions/7", "/v1/models/x/metadata", "/nope"]
)
def test_unknown_paths_are_a_404_with_the_error_shape(server: ServerProcess, path: str) -> None:
    with server.http() as http:
        r = http.get(path)
    assert r.status_code == 404
    assert set(r.json()) == {"error"}


def test_a_non_numeric_version_is_a_400(server: ServerProcess) -> None:
    with server.http() as http:
        r = http.post("/v1/models/dense/versions/abc:predict", json={"instances": [[1, 2, 3, 4]]})
    assert r.status_code == 400
    assert set(r.json()) == {"error"}


def test_a_body_over_the_limit_is_a_413_and_the_server_lives_on(server: ServerProcess) -> None:
    big = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 100_000}).encode()  # ~2 MB > 1 MiB
    with server.http() as http:
        r = http.post("/v1/models/dense:predict", content=big)
        assert r.status_code == 413
        assert "limit" in r.json()["error"]
        ok = http.post("/v1/models/dense:predict", json={"instances": [[1, 2, 3, 4]]})
    assert ok.status_code == 200
    assert len(ok.json()["predictions"]) == 1


def test_a_body_over_the_limit_without_a_length_is_refused(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    with server.http() as http:
        r = http.post("/v1/models/dense:predict", content=chunks())  # chunked, no length
    assert r.status_code == 413

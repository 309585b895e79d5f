"""The CAS API's answers to requests outside its schema: out-of-range numbers, missing
fields, unknown paths. Always a 4xx in the error shape, never a 500 (THREATS.md: the
anonymous client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from securetf.cas.settings import CasSettings
from tests._http.attacks import Target

from .inprocess import running_cas


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running_cas(tmp_path_factory.mktemp("api-errors"), CasSettings()) as target:
        yield target


def _error(answer: httpx.Response) -> dict[str, Any]:
    doc: dict[str, Any] = answer.json()
    assert set(doc) == {"error", "type", "exit_code"}, doc
    return doc


TAG = {
    "policy": "demo",
    "volume": "model",
    "serial": 1,
    "expected": None,
    "tag": "t",
    "version": 1,
    "signature": "",
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/tags", {**TAG, "serial": 10**30}, id="serial-10^30"),
        pytest.param("/v1/tags", {**TAG, "serial": 2**63}, id="serial-2^63"),
        pytest.param("/v1/tags", {**TAG, "serial": 0}, id="serial-0"),
        pytest.param("/v1/tags", {**TAG, "serial": -(2**70)}, id="serial-negative"),
        pytest.param("/v1/tags", {**TAG, "version": 10**30}, id="version-10^30"),
        pytest.param("/v1/tags", {**TAG, "version": -1}, id="version-negative"),
        pytest.param("/v1/tags", {**TAG, "serial": "1" * 400}, id="serial-400-digits"),
        pytest.param(
            "/v1/provision",
            {
                "policy": "demo",
                "service": "train",
                "instance": 10**30,
                "tee": "sim",
                "evidence": "",
                "nonce": "",
                "tls_public_key": "",
                "box_public_key": "",
            },
            id="instance-10^30",
        ),
        pytest.param("/v1/tags", {"serial": 1}, id="missing-fields"),
    ],
)
def test_numbers_out_of_range_are_a_400_in_the_error_shape(
    cas: Target, path: str, body: dict[str, Any]
) -> None:
    with httpx.Client(verify=False) as http:  # noqa: S501 - the answer is what is tested
        answer = http.post(f"{cas.url}{path}", json=body)
    assert answer.status_code == 400, answer.text
    error = _error(answer)
    assert error["type"] == "UsageError"
    assert "malformed request" in error["error"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(cas: Target) -> None:
    with httpx.Client(verify=False) as http:  # noqa: S501 - the answer is what is tested
        assert _error(http.get(f"{cas.url}/v2/nothing"))["type"] == "NotFoundError"
        wrong = http.delete(f"{cas.url}/v1/policies")
        assert wrong.status_code == 405
        assert _error(wrong)["type"] == "UsageError"

"""The claims model: validated, immutable, JSON with the fields the CLI promises."""

from __future__ import annotations

import dataclasses
import json

import pytest

from securetf.attestation import Claims
from securetf.errors import UsageError


def make(**kw: object) -> Claims:
    fields: dict[str, object] = {
        "tee": "sgx",
        "measurement": b"\xaa" * 32,
        "report_data": b"\xbb" * 64,
        "signer": "s",
        "tcb_status": "UpToDate",
    }
    fields.update(kw)
    return Claims(**fields)  # type: ignore[arg-type]


def test_json_has_the_promised_fields() -> None:
    doc = json.loads(make(advisories=["A"], measurements={"mrsigner": b"\x01"}).to_json())
    assert doc["tee"] == "sgx"
    assert doc["status"] == "UpToDate"
    assert doc["advisories"] == ["A"]
    assert doc["measurement"] == "aa" * 32
    assert doc["report_data"] == "bb" * 64
    assert doc["measurements"] == {"mrsigner": "01"}


def test_claims_are_immutable() -> None:
    c = make(measurements={"x": b"1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tee = "tdx"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.measurements["x"] = b"2"  # type: ignore[index]


@pytest.mark.parametrize(("field", "value"), [("tee", "sgx2"), ("report_data", b"short")])
def test_invalid_claims_are_refused(field: str, value: object) -> None:
    with pytest.raises(UsageError):
        make(**{field: value})

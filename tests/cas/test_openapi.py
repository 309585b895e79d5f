"""docs/cas-openapi.json is the API the CAS serves (regenerate: see the module's main)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from securetf.cas.api import create_app

SPEC = Path(__file__).resolve().parents[2] / "docs" / "cas-openapi.json"


def current_spec() -> dict[str, Any]:
    # The handlers are never called here: only their signatures make the spec.
    return create_app(cast(Any, None), cast(Any, None)).openapi()


def test_the_published_spec_is_current() -> None:
    assert json.loads(SPEC.read_text()) == current_spec(), (
        "the API changed: regenerate docs/cas-openapi.json (python -m tests.cas.test_openapi)"
    )


def test_every_error_answer_is_declared_in_the_error_shape() -> None:
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in current_spec()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # Validation failures are answered 400 in the error shape, never FastAPI's 422.
            assert "422" not in responses, (method, path)
            # Any request can carry a body that is too slow or too large.
            assert {"408", "413"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == error_body, (method, path, status)


if __name__ == "__main__":
    SPEC.write_text(json.dumps(current_spec(), indent=2, sort_keys=True) + "\n")

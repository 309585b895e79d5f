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


if __name__ == "__main__":
    SPEC.write_text(json.dumps(current_spec(), indent=2, sort_keys=True) + "\n")

"""The project's sibling directory ../shared (design examples, real TEE evidence).

A user's clone does not have it, so a test that reads it skips, with the path in its reason,
when it is missing; under CI (the environment variable ``CI`` set to anything non-empty, as
``.ci/run`` does) its absence fails instead, so a misconfigured CI cannot pass by skipping.
``SECURETF_TEST_SHARED`` points the tests at another directory (the tests use it to prove
both outcomes); nothing outside the tests reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SECURETF_TEST_SHARED") or REPO.parent / "shared")


def shared_file(*parts: str) -> Path:
    """The path of a file under ../shared, or skip the calling test (fail it under CI)."""
    path = SHARED.joinpath(*parts)
    if path.exists():
        return path
    reason = f"{path} is missing (../shared is not beside this clone)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the tests that need it must run", pytrace=False)
    pytest.skip(reason)

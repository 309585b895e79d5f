from __future__ import annotations

import pytest

from securetf import _logutil


@pytest.fixture(autouse=True)
def _fresh_loud_warnings() -> None:
    """Each test sees the loud warnings its code triggers, whatever ran before it."""
    _logutil._last.clear()

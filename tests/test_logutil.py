from __future__ import annotations

import logging

import pytest

from securetf._logutil import warn_loudly

LOG = logging.getLogger("securetf.test")


def test_a_loud_warning_is_shown_then_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            warn_loudly(LOG, "SIMULATED %s", "a")
        warn_loudly(LOG, "SIMULATED %s", "b")
    assert [r.getMessage() for r in caplog.records] == ["SIMULATED a", "SIMULATED b"]

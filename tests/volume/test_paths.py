from __future__ import annotations

import pytest

from securetf.errors import UsageError
from securetf.volume._paths import normalize, parents


def test_normalize() -> None:
    assert normalize("/a/b.csv") == "a/b.csv"
    assert normalize("a") == "a"
    assert parents("a/b/c") == ["a", "a/b"]


@pytest.mark.parametrize(
    "bad", ["", "/", "a//b", "../x", "a/../b", "./a", "a/.", "a\0b", "x" * 300]
)
def test_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        normalize(bad)

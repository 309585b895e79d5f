from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from securetf.volume._padding import padded_size, padme


def test_padme_known_values() -> None:
    assert [padme(n) for n in (2, 9, 100, 1025, 65537)] == [2, 10, 104, 1088, 67584]


@given(st.integers(min_value=2, max_value=1 << 40))
def test_padme_bounds(n: int) -> None:
    p = padme(n)
    assert n <= p <= n * 1.12 + 1


def test_small_sizes_are_hidden() -> None:
    assert {padded_size(n) for n in range(257)} == {256}

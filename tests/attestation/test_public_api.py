"""The package hands on exactly its ``__all__``, and each name exists."""

from __future__ import annotations

import pytest

import securetf.attestation as attestation


def test_all_names_exist_and_are_sorted_uniquely() -> None:
    assert len(set(attestation.__all__)) == len(attestation.__all__)
    for name in attestation.__all__:
        assert hasattr(attestation, name), name


def test_public_names_are_exactly_all() -> None:
    for name in attestation.__all__:  # handed on lazily: resolved on first use
        getattr(attestation, name)
    public = {
        n
        for n, v in vars(attestation).items()
        if not n.startswith("_") and not getattr(v, "__name__", "").startswith("securetf.")
    }
    assert public == set(attestation.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = attestation.not_a_name

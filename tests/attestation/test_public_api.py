"""The package hands on exactly its ``__all__``, and each name exists."""

from __future__ import annotations

import securetf.attestation as attestation


def test_all_names_exist_and_are_sorted_uniquely() -> None:
    assert len(set(attestation.__all__)) == len(attestation.__all__)
    for name in attestation.__all__:
        assert hasattr(attestation, name), name


def test_public_names_are_exactly_all() -> None:
    public = {
        n
        for n, v in vars(attestation).items()
        if not n.startswith("_") and not getattr(v, "__name__", "").startswith("securetf.")
    }
    assert public == set(attestation.__all__)

"""The store package hands on exactly its ``__all__``."""

from __future__ import annotations

import securetf.cas.store as store


def test_public_names_are_exactly_all() -> None:
    public = {n for n in vars(store) if not n.startswith("_")}
    assert public == set(store.__all__)
    assert len(set(store.__all__)) == len(store.__all__)

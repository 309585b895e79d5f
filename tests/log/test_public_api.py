"""The log package hands on exactly its ``__all__``."""

from __future__ import annotations

import securetf.log as log


def test_public_names_are_exactly_all() -> None:
    public = {n for n in vars(log) if not n.startswith("_")}
    assert public == set(log.__all__)
    assert len(set(log.__all__)) == len(log.__all__)

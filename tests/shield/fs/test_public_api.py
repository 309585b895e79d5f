"""The packages hand on exactly their ``__all__``, and each name exists."""

from __future__ import annotations

import types

import pytest

import securetf.shield as shield
import securetf.shield.fs as fs


@pytest.mark.parametrize("module", [shield, fs])
def test_public_names_are_exactly_all(module: types.ModuleType) -> None:
    assert len(set(module.__all__)) == len(module.__all__)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public == set(module.__all__)

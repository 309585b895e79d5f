from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.errors import UsageError
from securetf.volume._paths import check_tree, normalize, parents


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


_names = st.lists(st.sampled_from("ab"), min_size=1, max_size=3).map("/".join)


@settings(max_examples=150, deadline=None)
@given(files=st.sets(_names, max_size=4), dirs=st.sets(_names, max_size=3))
def test_check_tree_accepts_exactly_what_a_directory_can_hold(
    files: set[str], dirs: set[str]
) -> None:
    # The oracle is the real file system: build the tree, and see whether it fits.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            for d in dirs:
                (root / d).mkdir(parents=True, exist_ok=True)
            for f in files:
                (root / f).parent.mkdir(parents=True, exist_ok=True)
                (root / f).touch(exist_ok=False)
            fits = True
        except OSError:
            fits = False
    if fits:
        check_tree(sorted(files), sorted(dirs))
    else:
        with pytest.raises(UsageError):
            check_tree(sorted(files), sorted(dirs))


@pytest.mark.parametrize("paths", [["a", "a"], ["b", "a"]])
def test_check_tree_refuses_repeats_and_disorder(paths: list[str]) -> None:
    for files, dirs in ((paths, []), ([], paths)):
        with pytest.raises(UsageError, match="twice or out of order"):
            check_tree(files, dirs)

"""tests/shared.py: a missing ../shared skips a test, except under CI, where it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import shared


def test_present_file_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "design").mkdir()
    (tmp_path / "design" / "x.yaml").write_text("x")
    monkeypatch.setattr(shared, "SHARED", tmp_path)
    assert shared.shared_file("design", "x.yaml") == tmp_path / "design" / "x.yaml"


def test_missing_file_skips_with_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "SHARED", tmp_path / "absent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"absent/testvectors/a\.bin is missing"):
        shared.shared_file("testvectors", "a.bin")


@pytest.mark.parametrize("value", ["true", "1"])
def test_missing_file_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setattr(shared, "SHARED", tmp_path / "absent")
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        shared.shared_file("testvectors", "a.bin")


def test_ci_entry_point_sets_ci() -> None:
    assert "\nexport CI=true\n" in (shared.REPO / ".ci" / "run").read_text()

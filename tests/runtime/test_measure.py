"""The measurement of an app: deterministic, changed by any change of what runs, refusing
what it cannot cover, and the same whether measured in place or while copied."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from securetf import __version__
from securetf.errors import UsageError
from securetf.runtime import measure, measurement_text, snapshot

COMMAND = ["python", "train.py"]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return root


def test_deterministic_and_independent_of_location(app: Path, tmp_path: Path) -> None:
    digest = measure(app, COMMAND)
    assert len(digest) == 32
    assert measure(app, COMMAND) == digest
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(app, copy)
    assert measure(copy, COMMAND) == digest
    assert measurement_text(digest) == "sha256:" + digest.hex()


def _append(path: str) -> Callable[[Path], object]:
    def change(app: Path) -> None:
        with (app / path).open("ab") as f:
            f.write(b"#")

    return change


CHANGES: dict[str, Callable[[Path], object]] = {
    "content": lambda app: (app / "train.py").write_text("print('trains')\n"),
    "same size content": lambda app: (app / "train.py").write_text("print('TRAIN')\n"),
    "large file content": lambda app: _flip_last_byte(app / "pkg" / "sub" / "weights.bin"),
    "appended byte": _append("pkg/__init__.py"),
    "file mode": lambda app: (app / "train.py").chmod(0o600),
    "executable bit": lambda app: (app / "run.sh").chmod(0o644),
    "directory mode": lambda app: (app / "pkg").chmod(0o700),
    "file name": lambda app: (app / "run.sh").rename(app / "start.sh"),
    "file moved": lambda app: (app / "run.sh").rename(app / "pkg" / "run.sh"),
    "new empty file": lambda app: (app / "pkg" / "extra.py").touch(),
    "new empty directory": lambda app: (app / "pkg" / "new").mkdir(),
    "removed empty directory": lambda app: (app / "empty").rmdir(),
    "removed file": lambda app: (app / "pkg" / "__init__.py").unlink(),
}


def _flip_last_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte[0] ^ 1]))


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_of_the_tree_changes_it(app: Path, change: str) -> None:
    before = measure(app, COMMAND)
    CHANGES[change](app)
    assert measure(app, COMMAND) != before


@pytest.mark.parametrize(
    "command",
    [["python", "train.py", "--epochs", "3"], ["python3", "train.py"], ["python", "train.py "]],
)
def test_any_change_of_the_command_changes_it(app: Path, command: list[str]) -> None:
    assert measure(app, command) != measure(app, COMMAND)


def test_argument_boundaries_are_measured(app: Path) -> None:
    assert measure(app, ["python", "a b"]) != measure(app, ["python", "a", "b"])


def test_runtime_version_is_covered(app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (The package re-exports the function measure, which hides the module's name.)
    module = importlib.import_module("securetf.runtime.measure")
    before = measure(app, COMMAND)
    monkeypatch.setattr(module, "__version__", __version__ + ".post1")
    assert measure(app, COMMAND) != before


@pytest.mark.parametrize("target", ["train.py", "/etc/passwd", "pkg", "missing"])
def test_symlinks_are_refused(app: Path, target: str) -> None:
    (app / "pkg" / "link").symlink_to(target)
    with pytest.raises(UsageError, match="not a regular file or directory"):
        measure(app, COMMAND)
    with pytest.raises(UsageError, match="not a regular file or directory"):
        snapshot(app, app.parent / "dest", COMMAND)


def test_special_files_are_refused(app: Path) -> None:
    os.mkfifo(app / "fifo")
    with pytest.raises(UsageError, match="not a regular file or directory"):
        measure(app, COMMAND)


def test_missing_app_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        measure(tmp_path / "nope", COMMAND)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="does not exist"):
        measure(tmp_path / "file", COMMAND)


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        out[path.relative_to(root).as_posix()] = (st.st_mode, content)
    return out


def test_snapshot_equals_measure_and_copies_exactly(app: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    assert snapshot(app, dest, COMMAND) == measure(app, COMMAND)
    assert _tree(dest) == _tree(app)
    # And the copy measures the same: what runs is what was measured.
    assert measure(dest, COMMAND) == measure(app, COMMAND)


def test_snapshot_of_an_empty_app(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "dest").mkdir()
    digest = snapshot(tmp_path / "app", tmp_path / "dest", COMMAND)
    assert digest == measure(tmp_path / "app", COMMAND)
    assert list((tmp_path / "dest").iterdir()) == []

"""The measurement of an app: deterministic, changed by any change of what runs (the
file ``command[0]`` resolves to in the program's view included), refusing what it cannot
cover, and the same whether measured in place or while copied."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from securetf import __version__
from securetf.errors import UsageError
from securetf.runtime import measure, measure_launcher, measurement_text, snapshot
from securetf.runtime.measure import executable, launcher

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
    assert snapshot(app, dest, COMMAND).digest == measure(app, COMMAND)
    assert _tree(dest) == _tree(app)
    # And the copy measures the same: what runs is what was measured.
    assert measure(dest, COMMAND) == measure(app, COMMAND)


def test_snapshot_of_an_empty_app(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "dest").mkdir()
    digest = snapshot(tmp_path / "app", tmp_path / "dest", COMMAND).digest
    assert digest == measure(tmp_path / "app", COMMAND)
    assert list((tmp_path / "dest").iterdir()) == []


def test_command_is_resolved_in_the_program_s_view(app: Path) -> None:
    venv_python = f"{sys.prefix}/bin/python"
    assert executable(COMMAND, path=None, app=app) == venv_python
    assert executable(["sh"], path="/usr/bin:/bin", app=app) == "/usr/bin/sh"
    assert executable(["/bin/sh"], path=None, app=app) == "/bin/sh"
    # A name with a slash is the app's (where the program starts), never looked up.
    assert executable(["./run.sh"], path=None, app=app) == "/app/run.sh"
    assert executable(["run.sh"], path="/app:/usr/bin", app=app) == "/app/run.sh"


def test_what_command_0_resolves_to_is_measured(app: Path) -> None:
    (app / "bin").mkdir()
    (app / "bin" / "python").write_text("#!/bin/sh\n")
    (app / "bin" / "python").chmod(0o755)
    default = measure(app, COMMAND)
    # Another python first on the PATH: another measurement.
    assert measure(app, COMMAND, path="/app/bin:/usr/bin") != default
    # Another PATH that finds the same file: the same measurement (the PATH itself comes
    # from the CAS with the configuration, and the runtime checks it is the one measured).
    assert measure(app, COMMAND, path=f"{sys.prefix}/bin:/app/bin") == default


def test_launcher_measurement_resolves_command_0_too(app: Path) -> None:
    assert launcher(COMMAND, "code", code_path="/code").executable == f"{sys.prefix}/bin/python"
    # Inside the code, not decrypted yet: taken as it is.
    assert launcher(["./run.sh"], "code", code_path="/code").executable == "/code/run.sh"
    assert measure_launcher(COMMAND, "code", code_path="/code") != measure_launcher(
        ["/usr/bin/sh", "train.py"], "code", code_path="/code"
    )


def test_commands_outside_the_view_are_refused(app: Path, tmp_path: Path) -> None:
    # What the operator plants in a directory of its own is not in the program's view.
    planted = tmp_path / "operator-bin"
    planted.mkdir()
    (planted / "python").write_text("#!/bin/sh\n")
    (planted / "python").chmod(0o755)
    with pytest.raises(UsageError, match="not on the program's PATH"):
        measure(app, COMMAND, path=str(planted))
    with pytest.raises(UsageError, match="not on the program's PATH"):
        measure(app, ["no-such-program-anywhere"])
    with pytest.raises(UsageError, match="not an executable file in the program's view"):
        measure(app, [str(planted / "python")])
    with pytest.raises(UsageError, match="not an executable file"):
        measure(app, ["./train.py"])  # not executable
    with pytest.raises(UsageError, match="not an executable file"):
        measure(app, ["./missing.sh"])

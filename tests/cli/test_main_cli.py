"""The entry point: command modules imported only when their command runs, and the help
listed without them equal to their own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from securetf.cli.main import COMMANDS, load_command

PROBE = """
import sys
from securetf.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.startswith(("securetf.cli.", "securetf.runtime",
    "securetf.client", "securetf.cas", "sqlalchemy", "pydantic", "httpx", "rich")))
print("LOADED", " ".join(loaded))
"""


def _loaded_after(argv: list[str]) -> tuple[str, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED"))
    return proc.stdout, set(line.split()[1:])


def test_help_imports_no_command_module_and_lists_every_command() -> None:
    out, loaded = _loaded_after(["--help"])
    assert loaded <= {"securetf.cli.main"}, loaded
    for name, (_, help_text) in COMMANDS.items():
        assert name in out
        assert help_text.split()[0] in out


def test_a_command_imports_its_own_module_only() -> None:
    _, loaded = _loaded_after(["owner", "--help"])
    assert "securetf.cli.owner" in loaded
    assert not {"securetf.cli.volume", "securetf.cli.run", "securetf.runtime"} & loaded
    assert "sqlalchemy" not in loaded  # the CAS's store is the server's, not a client's


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_help_is_the_commands_own(name: str) -> None:
    target, listed = COMMANDS[name]
    command = load_command(name, target)
    own = (command.help or "").strip().splitlines()[0]
    assert own.startswith(listed.rstrip(".")), f"{name}: listed {listed!r}, its own {own!r}"
    assert command.name == name

"""The entry point: command modules imported only when their command runs, and the help
listed without them equal to their own."""

from __future__ import annotations

import os
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


RUN_PROBE = """
import ctypes.util, sys
looked_up, real = [], ctypes.util.find_library
def find_library(name):  # each call runs ldconfig
    looked_up.append(name)
    return real(name)
ctypes.util.find_library = find_library
from securetf.cli.main import main
try:
    main(["run", "--help"])
except SystemExit:
    pass
import securetf.shield.fs._fuse  # libfuse 3, as the run's check_fuse loads it
print("LOADED", " ".join(sorted(sys.modules)))
print("LOOKED-UP", ",".join(looked_up) or "-")
"""

#: What only owners, verifiers, packers or the CAS use: ADR 0019 keeps it out of the run.
NOT_ON_THE_RUN_PATH = {
    "securetf.policy._model",
    "securetf.policy._governance",
    "securetf.policy._requests",
    "securetf.policy._tee",
    "securetf.policy._update",
    "securetf.policy._schema",
    "yaml",
    "securetf.attestation.dcap",
    "securetf.attestation.verify",
    "securetf.attestation.collateral",
    "securetf.client.audit",
    "securetf.client.rotation",
    "securetf.client.cas_attest",
    "securetf.cas",
    "securetf.envimage._pack",
}


def test_the_run_command_imports_only_what_its_path_uses() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSE_LIBRARY_")}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_PROBE], capture_output=True, text=True, check=True, env=env
    )
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    loaded = set(lines["LOADED"].split())
    assert lines["LOOKED-UP"] == "-", f"find_library ran ldconfig for {lines['LOOKED-UP']}"
    assert "securetf.runtime.run" in loaded
    assert "securetf.shield.fs._fuse" in loaded
    assert not NOT_ON_THE_RUN_PATH & loaded, NOT_ON_THE_RUN_PATH & loaded

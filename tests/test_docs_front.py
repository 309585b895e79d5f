"""The README as a front page still documents every command, and ``make bench`` updates
docs/benchmarks.md's table without losing the rows of the suites it did not run."""

from __future__ import annotations

from pathlib import Path

from benchmarks import run as run_module
from benchmarks.run import DOC, END, START, SUITES, update_doc

from securetf.cli.main import COMMANDS, load_command

ROOT = Path(__file__).resolve().parents[1]
HEADER = "\n".join(run_module.HEADER)


def _row(suite: str, what: str) -> str:
    return f"| {suite} | {what} | 1 s | - | - |  |"


def test_update_doc_replaces_the_rows_of_the_suites_that_ran_only() -> None:
    doc = (
        f"# B\n\nintro\n{START}\nMeasured by hand.\n\n{HEADER}\n"
        f"{_row('volume', 'old seal')}\n{_row('cas', 'old rate')}\n{_row('net', 'old tunnel')}\n"
        f"{END}\n\nnotes after\n"
    )
    fresh = f"{HEADER}\n{_row('cas', 'new rate')}\n{_row('startup', 'new help')}"
    out = update_doc(doc, ["cas", "startup"], fresh)
    assert out.startswith("# B\n\nintro\n")
    assert out.endswith(f"{END}\n\nnotes after\n")
    assert "Measured by hand." in out
    assert "old rate" not in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "suite" not in line]
    assert [r.split("|")[2].strip() for r in rows] == [
        "old seal",
        "new rate",
        "old tunnel",
        "new help",
    ]
    assert SUITES.index("startup") > SUITES.index("net")


def test_the_benchmarks_page_has_the_table_make_bench_updates() -> None:
    text = DOC.read_text()
    assert START in text
    assert END in text
    assert update_doc(text, [], HEADER) == text  # a run of no suite changes nothing


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for heading in ("## Quickstart", "## Command line", "## Benchmarks", "## Exit codes"):
        assert heading in readme
    for name, (target, _) in COMMANDS.items():
        command = load_command(name, target)
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for sub in subcommands:
                assert f"`securetf {name} {sub}" in readme, f"securetf {name} {sub}"
        else:
            assert f"`securetf {name}" in readme, f"securetf {name}"

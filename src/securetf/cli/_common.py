"""Helpers shared by the command groups: printing JSON, asking, progress on a terminal.

rich is imported only when a bar or a spinner is drawn: most commands never need it, and
its import is a third of ``securetf run``'s start-up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import typer

from securetf.errors import UsageError

#: Below this many bytes a progress bar is noise.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def parse_assignments(items: list[str] | None, option: str) -> dict[str, str]:
    """``NAME=VALUE`` option values as a dict; a malformed one is a usage error."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} takes NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def confirm(question: str, *, yes: bool, action: str) -> bool:
    """Ask on a terminal; ``yes`` (--yes) answers for scripts. Without a terminal to ask
    on, and without --yes, nothing is done: a script must say it means it."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"{action} needs a confirmation and there is no terminal to ask on: "
            "pass --yes to go ahead without asking"
        )
    return typer.confirm(question, default=False)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(nbytes)`` callback; draw a bar on a terminal for large jobs."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(f"[bold]{label}", *columns, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def steps_on_terminal(prefix: str) -> Callable[[str], AbstractContextManager[object]] | None:
    """A spinner with the elapsed time for each named step of long work, on a terminal
    (stderr) only; None elsewhere, so logs and pipes get no control characters."""
    if not sys.stderr.isatty():
        return None

    def step(what: str) -> AbstractContextManager[object]:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn(f"{prefix}{what}"), TimeElapsedColumn())
        progress = Progress(*columns, console=Console(stderr=True), transient=True)
        progress.add_task(what, total=None)
        return progress

    return step

"""Entry point of ``securetf``: registers command groups, maps errors to exit codes.

A command's module is imported only when that command runs (``securetf --help`` imports
none of them; ``securetf run`` only the runtime): start-up is the interpreter and Typer.
Adding a command or a group is one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from securetf import __version__
from securetf.errors import Error

#: name -> ("module:attribute" (a Typer group or a command function), its one-line help).
#: The help is what ``securetf --help`` lists without importing the module; a test keeps
#: it equal to the module's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("securetf.cli.init:init_cmd", "Write a starter policy for an app directory"),
    "volume": (
        "securetf.cli.volume:app",
        "Sealed volumes: encrypted, authenticated, rollback-protected directory trees.",
    ),
    "attest": (
        "securetf.cli.attest:app",
        "TEE evidence: verify SGX, TDX, SEV-SNP and simulated evidence.",
    ),
    "cas": ("securetf.cli.cas:app", "The Configuration and Attestation Service."),
    "owner": ("securetf.cli.owner:app", "Policy owners' keys."),
    "policy": ("securetf.cli.policy:app", "Signed, versioned policies."),
    "secret": ("securetf.cli.secret:app", "Secrets exported to a policy's owners."),
    "audit": ("securetf.cli.audit:app", "The CAS's audit trail."),
    "log": ("securetf.cli.log:app", "The CAS's transparency log."),
    "env": (
        "securetf.cli.env:app",
        "Environment images: a Python environment, read-only and measured, for the program.",
    ),
    "run": ("securetf.cli.run:run_cmd", "Measure the app, attest to the CAS, mount the volumes"),
    "measure": ("securetf.cli.run:measure_cmd", "Print the measurement to put into the policy"),
    "serve": (
        "securetf.cli.serve:serve_cmd",
        "Serve the models under MODEL_DIR until interrupted.",
    ),
}


def load_command(name: str, target: str) -> click.Command:
    """Import ``target`` ("module:attribute") and make it the click command ``name``."""
    module, _, attribute = target.partition(":")
    obj: Any = getattr(importlib.import_module(module), attribute)
    if isinstance(obj, typer.Typer):
        command: click.Command = typer.main.get_group(obj)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(obj)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands: names known up front, each module imported on first use."""

    def __init__(self, loaded: MutableMapping[str, click.Command]) -> None:
        self._loaded = dict(loaded)

    def _names(self) -> list[str]:
        return [*COMMANDS, *(n for n in self._loaded if n not in COMMANDS)]

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            self._loaded[name] = load_command(name, COMMANDS[name][0])  # KeyError: unknown
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class LazyGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # names only: TyperGroup's own loads every command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from :data:`COMMANDS`' help texts: nothing imported to print it."""
        loaded = self.commands._loaded if isinstance(self.commands, _LazyCommands) else {}
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][1]))
            else:
                rows.append((name, loaded[name].get_short_help_str()))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="securetf",
    cls=LazyGroup,
    help="Run unmodified ML programs on untrusted infrastructure, confidentially.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's import would double the start-up
)


@app.callback()
def _root() -> None:
    """Run unmodified ML programs on untrusted infrastructure, confidentially."""


@app.command("version")
def version() -> None:
    """Print the securetf version."""
    typer.echo(__version__)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every securetf error becomes its message on stderr and its exit code."""
    try:
        app(args=argv, prog_name="securetf")
    except Error as exc:
        typer.echo(f"securetf: error: {exc.diagnostics()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("securetf: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

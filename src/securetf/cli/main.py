"""Entry point of ``securetf``: registers command groups, maps errors to exit codes."""

from __future__ import annotations

import sys

import typer

from securetf import __version__
from securetf.cli import attest, audit, cas, env, log, owner, policy, secret, serve, volume
from securetf.cli.run import measure_cmd, run_cmd
from securetf.errors import Error

app = typer.Typer(
    name="securetf",
    help="Run unmodified ML programs on untrusted infrastructure, confidentially.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(volume.app, name="volume")
app.add_typer(attest.app, name="attest")
app.add_typer(cas.app, name="cas")
app.add_typer(owner.app, name="owner")
app.add_typer(policy.app, name="policy")
app.add_typer(secret.app, name="secret")
app.add_typer(audit.app, name="audit")
app.add_typer(log.app, name="log")
app.add_typer(env.app, name="env")
app.command("run")(run_cmd)
app.command("measure")(measure_cmd)
app.command("serve")(serve.serve_cmd)


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

"""``securetf secret``: owners fetch the secrets their policy exports to them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import write_private_file
from securetf.cli.cas import CasUrl
from securetf.cli.owner import load_owner_key
from securetf.client import CasClient

app = typer.Typer(help="Secrets exported to a policy's owners.", no_args_is_help=True)


@app.command()
def get(
    name: Annotated[str, typer.Argument(help="The secret's name in the policy.")],
    policy: Annotated[str, typer.Option(help="The policy's name.")],
    cas: CasUrl,
    key: Annotated[Path, typer.Option("--key", help="Your owner key.")],
    out: Annotated[Path, typer.Option(help="Where to write the secret (mode 0600).")],
    previous: Annotated[
        bool,
        typer.Option(
            "--previous",
            help="The value a policy update replaced, while the policy keeps it readable "
            "(previous_readable_seconds).",
        ),
    ] = False,
) -> None:
    """Write an exported secret's bytes to OUT (for example a model volume's key)."""
    target = name + "@previous" if previous else name
    with CasClient.for_url(cas) as client:
        value = client.export_secret(policy, target, load_owner_key(key))
    write_private_file(out, value)
    typer.echo(f"wrote secret {name} of policy {policy} to {out}")

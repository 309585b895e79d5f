"""``securetf policy``: apply, approve and inspect policies at a CAS."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import read_file
from securetf.cli._common import confirm, parse_assignments, print_json
from securetf.cli.cas import CasUrl
from securetf.cli.owner import load_owner_key
from securetf.client import CasClient
from securetf.client.policy_update import PreparedPolicy, prepare_policy
from securetf.volume import VolumeKey

app = typer.Typer(help="Signed, versioned policies.", no_args_is_help=True)
KeyOpt = Annotated[Path, typer.Option("--key", help="Your owner key (from 'owner keygen').")]


def _secrets(items: list[str] | None) -> dict[str, bytes]:
    pairs = parse_assignments(items, "--secret")
    return {name: VolumeKey.from_file(Path(path)).raw() for name, path in pairs.items()}


Yes = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for scripts).")]


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="The policy YAML.")],
    cas: CasUrl,
    key: KeyOpt,
    secret: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE: an imported secret (a volume key).")
    ] = None,
    yes: Yes = False,
) -> None:
    """Upload a policy (new, or the next version) with your signature and imported secrets.

    Without 'version' and 'predecessor' in the file, they are filled in from the version in
    force. Shows what changes and asks before applying; --yes applies without asking.
    """
    yaml = read_file(file, "policy file")
    owner = load_owner_key(key)
    secrets = _secrets(secret)
    with CasClient.for_url(cas) as client:
        prepared = prepare_policy(client, yaml, owner)
        _show_changes(prepared)
        if not confirm("apply it?", yes=yes, action="applying a policy"):
            typer.echo("not applied")
            raise typer.Exit(1)
        result = client.apply_policy(prepared.yaml, owner, secrets)
    if result.status == "pending":
        typer.echo(
            f"policy {result.name} version {result.version} is pending: "
            f"{result.signatures} of {result.needed} owner signatures "
            f"(others run 'securetf policy approve {result.name} --version {result.version}')"
        )
    else:
        typer.echo(
            f"policy {result.name} version {result.version} is in force\nhash: {result.hash}"
        )


def _show_changes(prepared: PreparedPolicy) -> None:
    p, doc = prepared.policy, prepared.in_force
    if doc is None:
        typer.echo(f"new policy {p.name}, version 1:")
    else:
        typer.echo(f"policy {p.name} version {p.version}, replacing version {doc.version}:")
    for line in prepared.changes or ["(no change in meaning)"]:
        typer.echo(f"  {line}")


@app.command()
def approve(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    version: Annotated[int, typer.Option(help="The pending version you approve.")],
    cas: CasUrl,
    key: KeyOpt,
) -> None:
    """Add your signature to a pending update."""
    with CasClient.for_url(cas) as client:
        result = client.approve_policy(name, version, load_owner_key(key))
    state = (
        "is in force"
        if result.status == "active"
        else f"has {result.signatures}/{result.needed} signatures"
    )
    typer.echo(f"policy {name} version {version} {state}")


OwnerKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", help="An owner's key file: shows what only owners may read.", show_default=False
    ),
]


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    cas: CasUrl,
    key: OwnerKeyOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Print the version in force (its YAML only with an owner's --key)."""
    with CasClient.for_url(cas) as client:
        doc = client.show_policy(name, load_owner_key(key)) if key else client.policy(name)
    yaml = doc.policy_yaml.decode(errors="replace") if doc.policy_yaml is not None else None
    if json:
        print_json(
            {
                "name": doc.name,
                "version": doc.version,
                "hash": doc.hash,
                "created_at": doc.created_at,
                "ca_certificate_pem": doc.ca_certificate_pem,
                "policy_yaml": yaml,
            }
        )
        return
    typer.echo(f"# {doc.name} version {doc.version} ({doc.hash})")
    typer.echo(yaml if yaml is not None else "# the YAML is shown to owners only: add --key")


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    cas: CasUrl,
    key: OwnerKeyOpt = None,
) -> None:
    """List every version and any pending update (who approved each, with an owner's --key)."""
    with CasClient.for_url(cas) as client:
        hist = client.history(name, load_owner_key(key) if key else None)

    def by(names: list[str]) -> str:
        return f" approved by {', '.join(names)}" if key else ""

    for item in hist.versions:
        when = datetime.datetime.fromtimestamp(item.created_at, tz=datetime.UTC).isoformat()
        typer.echo(f"v{item.version} {when} {item.hash}{by(item.approved_by)}")
    if hist.pending:
        p = hist.pending
        typer.echo(f"pending v{p.version} {p.hash}{by(p.approved_by)}")

"""``securetf audit``: owners verify the CAS's hash-chained, signed audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securetf.cli.cas import CasUrl
from securetf.cli.owner import load_owner_key
from securetf.client import CasClient
from securetf.errors import UsageError

app = typer.Typer(help="The CAS's audit trail.", no_args_is_help=True)


@app.command()
def verify(
    cas: CasUrl,
    key: Annotated[Path, typer.Option("--key", help="Your owner key.")],
    policy: Annotated[
        str | None, typer.Option(help="Your policy (default: every policy the key owns).")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print your policy's entries.")] = False,
) -> None:
    """Check every link and signature of the audit chain up to its head, and that it extends
    the head kept from your last check; print your policies' entries."""
    owner = load_owner_key(key)
    with CasClient.for_url(cas) as client:
        names = [policy] if policy else client.owned_policies(owner)
        if not names:
            raise UsageError(f"this key owns no policy at {cas}; name one with --policy")
        for name in names:
            trail = client.audit(name, owner)
            typer.echo(
                f"audit chain ok: {trail.head.seq} entries, {len(trail.entries)} of policy "
                f"{name}, head {trail.head.chain.hex()[:16]}"
            )
            if show:
                for e in trail.entries:
                    typer.echo(f"{e['seq']:>6} {e['kind']:<20} {e['detail']}")

"""``securetf log``: read and check a pinned CAS's transparency log.

Exit codes: 0 verified; 2 usage (no pin, no log key, a bad index); 3 a proof or the log's
history does not verify (a fork, a rollback: keep the checkpoint files as evidence); 4 a
checkpoint not signed by the pinned log key.
"""

from __future__ import annotations

import base64
from typing import Annotated

import typer

from securetf.cli._common import print_json
from securetf.cli.cas import CasUrl
from securetf.client.caslog import CasLogClient, ProvenEntry
from securetf.log import Checkpoint

app = typer.Typer(help="The CAS's transparency log.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _checkpoint_json(c: Checkpoint) -> dict[str, object]:
    return {"origin": c.origin, "size": c.size, "root": base64.b64encode(c.root).decode()}


def _entry_json(e: ProvenEntry) -> dict[str, object]:
    return {"index": e.index, "entry": e.decoded()}


@app.command()
def checkpoint(cas: CasUrl, json: Json = False) -> None:
    """Fetch the log's checkpoint and verify it with the pinned log key."""
    with CasLogClient.for_url(cas) as log:
        verified = log.checkpoint()
    c = verified.checkpoint
    if json:
        print_json({**_checkpoint_json(c), "note": verified.note.decode()})
    else:
        typer.echo(f"{c.origin}: {c.size} entries, root {c.root.hex()}")


@app.command()
def entries(
    cas: CasUrl,
    start: Annotated[int, typer.Option(min=0, help="The first entry's index.")] = 0,
    count: Annotated[int, typer.Option(min=1, max=256, help="How many entries.")] = 20,
    json: Json = False,
) -> None:
    """Print entries, each proven to be in the verified checkpoint."""
    with CasLogClient.for_url(cas) as log:
        c = log.checkpoint().checkpoint
        got = log.entries(start, count, c)
    if json:
        print_json({"checkpoint": _checkpoint_json(c), "entries": [_entry_json(e) for e in got]})
        return
    for e in got:
        typer.echo(f"{e.index:>8} {e.data.decode()}")


@app.command()
def prove(
    cas: CasUrl,
    index: Annotated[int, typer.Argument(min=0, help="The entry's index.")],
    json: Json = False,
) -> None:
    """Print entry INDEX and its inclusion proof, verified against the checkpoint."""
    with CasLogClient.for_url(cas) as log:
        c = log.checkpoint().checkpoint
        e = log.prove(index, c)
    if json:
        print_json(
            {
                "checkpoint": _checkpoint_json(c),
                **_entry_json(e),
                "proof": [base64.b64encode(h).decode() for h in e.proof],
            }
        )
        return
    typer.echo(f"entry {e.index} is in the tree of {c.size} (root {c.root.hex()}):")
    typer.echo(e.data.decode())
    for h in e.proof:
        typer.echo(f"  {h.hex()}")


@app.command()
def verify(cas: CasUrl, json: Json = False) -> None:
    """Check that the log's current checkpoint extends the one kept from the last check
    (refusing a fork or a rollback), then keep it."""
    with CasLogClient.for_url(cas) as log:
        old, current = log.verify()
    c = current.checkpoint
    if json:
        print_json(
            {
                "previous": _checkpoint_json(old) if old else None,
                "checkpoint": _checkpoint_json(c),
            }
        )
    elif old is None:
        typer.echo(f"first checkpoint kept: {c.size} entries, root {c.root.hex()}")
    else:
        typer.echo(f"log ok: {old.size} -> {c.size} entries, consistent; root {c.root.hex()}")

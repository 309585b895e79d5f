"""``securetf log``: read, check, witness and mirror a pinned CAS's transparency log.

Exit codes: 0 verified; 2 usage (no pin, no log key, a bad index, a CAS that cannot be
reached); 3 a proof or the log's history does not verify (a fork, a rollback: keep the
checkpoint files as evidence); 4 a checkpoint not signed by the pinned log key, or
without the witness cosignatures the CAS requires.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import write_private_file
from securetf.attestation.sim_key import securetf_home
from securetf.cli._common import print_json
from securetf.cli.cas import CasUrl
from securetf.client.caslog import CasLogClient, ProvenEntry
from securetf.client.mirror import mirror_log
from securetf.client.pins import load_pin
from securetf.client.witness import load_signer, state_path, witness_once
from securetf.crypto import random_bytes
from securetf.errors import Error
from securetf.log import Checkpoint, CosignatureSigner

app = typer.Typer(help="The CAS's transparency log.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Mirror = Annotated[
    str | None,
    typer.Option(
        help="Read the log from this static mirror of its tiles (securetf log mirror) "
        "instead of the CAS; verified with the same pinned keys."
    ),
]


def _checkpoint_json(c: Checkpoint) -> dict[str, object]:
    return {"origin": c.origin, "size": c.size, "root": base64.b64encode(c.root).decode()}


def _entry_json(e: ProvenEntry) -> dict[str, object]:
    return {"index": e.index, "entry": e.decoded()}


@app.command()
def checkpoint(cas: CasUrl, json: Json = False, mirror: Mirror = None) -> None:
    """Fetch the log's checkpoint and verify it with the pinned log key (and witnesses)."""
    with CasLogClient.for_url(cas, source=mirror) as log:
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
    mirror: Mirror = None,
) -> None:
    """Print entries, each proven to be in the verified checkpoint."""
    with CasLogClient.for_url(cas, source=mirror) as log:
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
    mirror: Mirror = None,
) -> None:
    """Print entry INDEX and its inclusion proof, verified against the checkpoint."""
    with CasLogClient.for_url(cas, source=mirror) as log:
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
def verify(cas: CasUrl, json: Json = False, mirror: Mirror = None) -> None:
    """Check that the log's current checkpoint extends the one kept from the last check
    (refusing a fork or a rollback), then keep it."""
    with CasLogClient.for_url(cas, source=mirror) as log:
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


@app.command("witness-key")
def witness_key(
    name: Annotated[str, typer.Option(help="The witness's name (no spaces, no '+').")],
    out: Annotated[Path, typer.Option(help="Where to write the new private key (mode 0600).")],
) -> None:
    """Make a witness key; print its vkey (give it to the CAS: --log-witness VKEY)."""
    skey = CosignatureSigner.skey(name, random_bytes(32))
    write_private_file(out, skey.encode() + b"\n")
    typer.echo(CosignatureSigner.load(skey, clock=time.time).verifier().vkey())


@app.command()
def witness(
    log_url: Annotated[
        str, typer.Option("--log", help="The CAS whose log to witness (attested: 'cas attest').")
    ],
    key: Annotated[Path, typer.Option(help="The witness key ('securetf log witness-key').")],
    state: Annotated[
        Path | None,
        typer.Option(
            help="The last checkpoint this witness cosigned (default: "
            "$SECURETF_HOME/witness/<host>_<port>.<key ID>.checkpoint)."
        ),
    ] = None,
    every: Annotated[
        float,
        typer.Option(min=0, help="Witness again every SECONDS until stopped (0: once)."),
    ] = 0,
) -> None:
    """Cosign the CAS's checkpoint if it extends the last one this witness cosigned
    (C2SP tlog-witness); refuse a fork or a rollback with exit 3, and stop."""
    signer = load_signer(key)
    path = state or state_path(securetf_home(), log_url, signer)
    pin = load_pin(log_url)
    while True:
        with CasLogClient(pin) as log:
            try:
                done = witness_once(log, signer, path)
            except Error as exc:
                if not every or exc.exit_code != 2:  # a fork or a rollback ends witnessing
                    raise
                typer.echo(f"securetf: {exc}", err=True)
            else:
                c, old = done.checkpoint, done.previous
                since = f"from {old.size} " if old else ""
                typer.echo(f"cosigned {c.origin} {since}to {c.size} entries, root {c.root.hex()}")
        if not every:
            return
        time.sleep(every)


@app.command()
def mirror(
    cas: CasUrl,
    directory: Annotated[Path, typer.Argument(help="The mirror's directory (tlog-tiles).")],
) -> None:
    """Copy the log into DIRECTORY as C2SP tlog-tiles (checkpoint, tiles, entry bundles)
    for any static file server; verified first, never behind the mirror's own checkpoint.
    Clients then read it with --mirror URL."""
    with CasLogClient.for_url(cas) as log:
        done = mirror_log(log, directory)
    c, old = done.checkpoint, done.previous
    since = f"{old.size} -> " if old else ""
    typer.echo(f"mirrored {since}{c.size} entries ({done.written} files written) in {directory}")

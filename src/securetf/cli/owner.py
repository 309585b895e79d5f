"""``securetf owner``: the keys of a policy's owners."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import read_file, write_private_file
from securetf.crypto import SigningKey
from securetf.errors import UsageError

app = typer.Typer(help="Policy owners' keys.", no_args_is_help=True)


def load_owner_key(path: Path) -> SigningKey:
    if not path.exists():
        raise UsageError(
            f"owner key {path} does not exist: give the file 'securetf owner keygen' wrote, "
            f"or make a new key with 'securetf owner keygen {path}'"
        )
    return SigningKey.from_pem(read_file(path, "owner key"), source=str(path))


@app.command()
def keygen(
    keyfile: Annotated[Path, typer.Argument(help="Where to write the private key.")],
) -> None:
    """Write a new Ed25519 owner key (mode 0600) and print its public key for a policy."""
    key = SigningKey.generate()
    write_private_file(keyfile, key.to_pem())
    typer.echo(key.verify_key().to_text())


@app.command()
def pubkey(
    keyfile: Annotated[Path, typer.Argument(help="The owner key (from 'owner keygen').")],
) -> None:
    """Print the public key of an owner key file, as a policy's owners list takes it."""
    typer.echo(load_owner_key(keyfile).verify_key().to_text())

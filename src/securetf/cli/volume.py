"""``securetf volume``: seal, open and verify encrypted volumes; register their state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from securetf.cli._common import print_json, progress_bar
from securetf.cli.cas import CasUrl
from securetf.cli.owner import load_owner_key
from securetf.cli.policy import KeyOpt
from securetf.client import CasClient
from securetf.client.volumes import register_volume
from securetf.volume import (
    Volume,
    VolumeKey,
    generate_key_file,
    put_file,
    scan_tree,
    seal_tree,
    unseal_tree,
)

app = typer.Typer(
    help="Sealed volumes: encrypted, authenticated, rollback-protected directory trees.",
    no_args_is_help=True,
)

KeyFile = Annotated[Path, typer.Option("--key-file", help="The volume key (from 'volume keygen').")]


@app.command()
def keygen(keyfile: Annotated[Path, typer.Argument(help="Where to write the new key.")]) -> None:
    """Write a new random 256-bit volume key (mode 0600); refuse to overwrite a file."""
    generate_key_file(keyfile)
    typer.echo(f"wrote a new volume key to {keyfile}")


@app.command()
def seal(
    src: Annotated[Path, typer.Argument(help="Directory tree to seal.")],
    dst: Annotated[Path, typer.Argument(help="New sealed volume directory (must not exist).")],
    key_file: KeyFile,
) -> None:
    """Encrypt the directory tree SRC into the new volume DST."""
    key = VolumeKey.from_file(key_file)
    tree = scan_tree(src)
    with progress_bar("sealing", tree.size) as advance:
        tag = seal_tree(src, dst, key, progress=advance, tree=tree)
    typer.echo(f"sealed {len(tree.files)} files into {dst}\ntag: {tag}")


@app.command()
def unseal(
    vol: Annotated[Path, typer.Argument(help="Sealed volume.")],
    out: Annotated[Path, typer.Argument(help="New directory for the plaintext (must not exist).")],
    key_file: KeyFile,
) -> None:
    """Decrypt the volume VOL into the new directory OUT (nothing is left there on failure)."""
    with Volume.open(vol, VolumeKey.from_file(key_file)) as v:
        with progress_bar("unsealing", sum(f.size for f in v.files())) as advance:
            unseal_tree(v, out, progress=advance)
        typer.echo(f"unsealed {len(v.files())} files into {out}\ntag: {v.tag}")


@app.command()
def put(
    vol: Annotated[Path, typer.Argument(help="Sealed volume.")],
    src_file: Annotated[Path, typer.Argument(help="Plain file to add.")],
    dest_path: Annotated[str, typer.Argument(help="Path inside the volume.")],
    key_file: KeyFile,
) -> None:
    """Add or replace one file and commit a new version of the volume."""
    with Volume.open(vol, VolumeKey.from_file(key_file), writable=True) as v:
        put_file(v, src_file, dest_path)
        tag = v.commit()
        typer.echo(f"version: {v.version}\ntag: {tag}")


@app.command("ls")
def ls(vol: Annotated[Path, typer.Argument(help="Sealed volume.")], key_file: KeyFile) -> None:
    """List the files of a volume: mode, size, path."""
    with Volume.open(vol, VolumeKey.from_file(key_file)) as v:
        for f in v.files():
            typer.echo(f"{f.mode:04o} {f.size:>14,} {f.path}")


@app.command()
def verify(
    vol: Annotated[Path, typer.Argument(help="Sealed volume.")],
    key_file: KeyFile,
    expect_tag: Annotated[
        str | None, typer.Option(help="Fail unless the volume is in exactly this state.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Authenticate every byte of the volume and print its tag."""
    with _open(vol, key_file, expect_tag) as v:
        size = sum(f.size for f in v.files())
        with progress_bar("verifying", size) as advance:
            report = v.verify(progress=advance)
    if json:
        print_json(
            {
                "tag": report.tag,
                "version": report.version,
                "files": report.files,
                "bytes": report.bytes,
            }
        )
    else:
        typer.echo(f"ok: version {report.version}, {report.files} files, {report.bytes:,} bytes")
        typer.echo(f"tag: {report.tag}")


@app.command()
def register(
    policy: Annotated[str, typer.Option(help="The policy that names the volume.")],
    volume: Annotated[str, typer.Option(help="The volume's name in the policy.")],
    cas: CasUrl,
    key: KeyOpt,
    vol: Annotated[
        Path | None, typer.Argument(help="The sealed volume whose current state to register.")
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="The volume key (default: from the CAS, if exported to owners)."
        ),
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Register this tag instead of VOL's.")] = None,
    version: Annotated[int | None, typer.Option(help="The version of --tag.")] = None,
) -> None:
    """Record a volume's state at the CAS: the only state a rollback-protected volume opens in."""
    with CasClient.for_url(cas) as client:
        done = register_volume(
            client,
            load_owner_key(key),
            policy=policy,
            volume=volume,
            path=vol,
            key_file=key_file,
            tag=tag,
            version=version,
        )
    was = f"(was {done.previous})" if done.previous else "(none was recorded)"
    typer.echo(f"registered volume {volume} of policy {policy}: version {done.version} {was}")
    typer.echo(f"tag: {done.tag}")


@contextmanager
def _open(vol: Path, key_file: Path, expect_tag: str | None) -> Iterator[Volume]:
    with Volume.open(vol, VolumeKey.from_file(key_file), expect_tag=expect_tag) as v:
        yield v

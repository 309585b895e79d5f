"""``securetf env``: measured environment images (docs/env-image.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securetf.envimage import EnvImage, describe, measurement_text, pack
from securetf.errors import UsageError

app = typer.Typer(
    help="Environment images: a Python environment, read-only and measured, for the program.",
    no_args_is_help=True,
)


@app.command("pack")
def pack_cmd(
    prefix: Annotated[Path, typer.Argument(help="A venv, or a prefix holding Python.")],
    image: Annotated[Path, typer.Argument(help="The image to write (must not exist).")],
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="An absolute path or glob left out of the image (repeatable)."),
    ] = None,
) -> None:
    """Pack an environment into an image; print what it holds, then its measurement.

    The last line is the measurement (``sha256:...``) for the service's ``env_image``.
    """
    env = describe(prefix, exclude or [])
    for root in env.roots:
        typer.echo(f"packing {root}", err=True)
    digest = pack(prefix, image, exclude or [])
    typer.echo(f"wrote {image}; its programs run as {env.python}", err=True)
    typer.echo(measurement_text(digest))


@app.command("measure")
def measure_cmd(
    image: Annotated[Path, typer.Argument(help="An image made by 'securetf env pack'.")],
) -> None:
    """Check every byte of an image and print its measurement (exit 3 if it was changed)."""
    opened = EnvImage.open(image)
    try:
        opened.verify_all()
        for root in opened.meta.roots:
            typer.echo(f"holds {root}", err=True)
        typer.echo(measurement_text(opened.digest))
    finally:
        opened.close()


@app.command("serve")
def serve_cmd(
    image: Annotated[Path, typer.Argument(help="An image made by 'securetf env pack'.")],
    expect: Annotated[
        str | None,
        typer.Option(help="Refuse the image unless it is this measurement (sha256:...)."),
    ] = None,
) -> None:
    """Keep an image mounted for every 'securetf run' on this machine until stopped.

    Each chunk is still checked when first read; later runs of the same image then read
    the kernel's cache of what was checked (docs/env-image.md). Prints the measurement
    once serving; SIGTERM or Ctrl-C stops it after the running programs end.
    """
    from securetf.shield.fs import ImageServer, check_fuse

    want = None
    if expect is not None:
        try:
            if not expect.startswith("sha256:") or len(expect) != 71:
                raise ValueError(expect)
            want = bytes.fromhex(expect[7:])
        except ValueError:
            raise UsageError(
                "--expect takes a measurement as 'securetf env pack' prints it (sha256:...)"
            ) from None
    check_fuse()
    server = ImageServer(EnvImage.open(image, expect=want))
    server.start()
    typer.echo(f"serving {image} at {server.where}; stop with SIGTERM or Ctrl-C", err=True)
    typer.echo(measurement_text(server.image.digest))
    server.serve_until_signalled()

"""``securetf volume``: seal, open and verify encrypted volumes."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sealed volumes: encrypted, authenticated, rollback-protected trees.", no_args_is_help=True
)

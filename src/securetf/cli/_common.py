"""Helpers shared by the command groups: printing JSON, progress bars."""

from __future__ import annotations

import json
from typing import Any

import typer


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))

"""httpx without its command-line tool.

httpx's ``__init__`` imports ``httpx._main`` (its ``httpx`` command) whenever click, rich
and pygments are installed, as they are beside Typer: about a fifth of ``securetf run``'s
start-up for a tool securetf never runs. A placeholder registered first keeps that import
from happening; the HTTP client is untouched. Import httpx through this module, before
anything else imports it.
"""

from __future__ import annotations

import sys
import types

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _placeholder = types.ModuleType("httpx._main")

    def _main() -> None:
        raise SystemExit("httpx's command line is not loaded in securetf")

    _placeholder.main = _main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _placeholder

import httpx

__all__ = ["httpx"]

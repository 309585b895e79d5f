"""Packages whose public names are imported from their submodules on first use.

``securetf run`` imports a handful of each package's names; importing every submodule
up front (every verifier, the policy model, the packer) is most of its start-up. A
package lists where each name lives and sets ``__getattr__ = lazy_names(__name__, WHERE)``
(PEP 562); type checkers see the names through ``if TYPE_CHECKING:`` imports. No
submodule may be named like one of the names (it would hide the name once imported).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``name`` from ``package.<where[name]>``,
    kept in the package's namespace, so later lookups do not come back here."""

    def lookup(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return lookup

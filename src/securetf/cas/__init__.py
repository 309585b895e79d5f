"""The Configuration and Attestation Service: policies, secrets, CAs, attestation, tags, audit.

The HTTP server lives in :mod:`securetf.cas.server` (imported on demand: it pulls in the
web stack). ``Cas`` and ``CasSettings`` are imported on first use too: clients import
``securetf.cas.audit`` (the audit chain's rules) and must not pay for the store's
SQLAlchemy on every start of ``securetf``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from securetf.cas.core import Cas
    from securetf.cas.settings import CasSettings

__all__ = ["Cas", "CasSettings"]


def __getattr__(name: str) -> object:
    if name == "Cas":
        from securetf.cas.core import Cas

        return Cas
    if name == "CasSettings":
        from securetf.cas.settings import CasSettings

        return CasSettings
    raise AttributeError(f"module 'securetf.cas' has no attribute {name!r}")

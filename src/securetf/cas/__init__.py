"""The Configuration and Attestation Service: policies, secrets, CAs, attestation, tags, audit.

The HTTP server lives in :mod:`securetf.cas.server` (imported on demand: it pulls in the
web stack).
"""

from securetf.cas.core import Cas
from securetf.cas.settings import CasSettings

__all__ = ["Cas", "CasSettings"]

"""The Configuration and Attestation Service: policies, secrets, CAs, attestation, tags, audit."""

from securetf.cas.core import Cas
from securetf.cas.server import ServeOptions, build, serve
from securetf.cas.settings import CasSettings

__all__ = ["Cas", "CasSettings", "ServeOptions", "build", "serve"]

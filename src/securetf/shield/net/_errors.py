"""The network shield's errors: what is missing on this machine, or which peer was refused."""

from __future__ import annotations

from securetf.errors import AuthenticationError, Error


class NetShieldError(Error):
    """The network shield cannot be set up; the message names what is missing."""


class PeerRefusedError(AuthenticationError):
    """A peer's certificate does not name a service this instance may talk to."""

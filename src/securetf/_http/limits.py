"""Named limits on how long and how much an HTTP client may take, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass

from securetf.errors import UsageError

__all__ = ["BodyTimeoutError", "BodyTooLargeError", "HttpLimits"]


@dataclass(frozen=True)
class HttpLimits:
    """Every wait a client can impose on a server, bounded (docs/cas.md, "Limits")."""

    #: A TLS handshake, opening or closing, must finish within this many seconds.
    tls_handshake_seconds: float = 10.0
    #: A request's headers must be complete this many seconds after its first byte.
    header_seconds: float = 10.0
    #: A request's body must be complete this many seconds after its headers.
    body_seconds: float = 60.0
    #: A connection with no request under way is closed after this many seconds (whole
    #: seconds: uvicorn's keep-alive timer takes an int).
    idle_seconds: int = 5
    #: A client that reads none of its response for this many seconds is disconnected.
    send_stall_seconds: float = 30.0
    #: Most connections open at once, TLS handshakes included; more are closed at once.
    max_connections: int = 256

    def __post_init__(self) -> None:
        timeouts = (
            self.tls_handshake_seconds,
            self.header_seconds,
            self.body_seconds,
            self.idle_seconds,
            self.send_stall_seconds,
        )
        if min(timeouts) <= 0 or self.max_connections < 1:
            raise UsageError("HTTP timeouts must be positive and max_connections at least 1")


class BodyTooLargeError(UsageError):
    """The request body exceeds the server's limit (HTTP 413)."""


class BodyTimeoutError(UsageError):
    """The request body did not arrive in time (HTTP 408)."""

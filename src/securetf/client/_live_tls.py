"""TLS client contexts whose every handshake ends with the CAS's liveness check.

The check runs inside ``do_handshake``: after OpenSSL has verified the chain and the name,
and before ``wrap_socket`` or ``wrap_bio`` hands the connection to whoever asked for it.
So nothing that uses such a context (httpx's connection pool, the client's own handshake)
holds a connection it could write a request to until the server's certificate was found
live; a refused connection is closed unused. ``SSLContext.sslsocket_class`` and
``sslobject_class`` are the standard library's documented hooks for this.
"""

from __future__ import annotations

import ssl

from securetf.client.liveness import LivenessChecker
from securetf.errors import AuthenticationError


def _require_live(context: ssl.SSLContext, der: bytes | None) -> None:
    if not isinstance(context, LiveContext):  # fail closed, never skip the check
        raise AuthenticationError("the TLS context lost its liveness check; refused")
    if der is None:
        raise AuthenticationError("the server presented no certificate")
    context.liveness.check(der)


class _LiveSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        try:
            _require_live(self.context, self.getpeercert(binary_form=True))
        except BaseException:
            self.close()  # never used: not a byte of the request was written to it
            raise


class _LiveObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is complete
        _require_live(self.context, self.getpeercert(binary_form=True))


class LiveContext(ssl.SSLContext):
    """A client context that accepts a server only while the CAS says it is live."""

    sslsocket_class = _LiveSocket
    sslobject_class = _LiveObject
    liveness: LivenessChecker


def live_context(liveness: LivenessChecker) -> LiveContext:
    ctx = LiveContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    ctx.liveness = liveness
    return ctx

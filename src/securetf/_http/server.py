"""An HTTP(S) server for an ASGI app with every limit of :class:`HttpLimits` applied."""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp

from securetf._http.body import BodyGuard
from securetf._http.limits import HttpLimits
from securetf._http.protocol import ConnectionCount, protocol_class
from securetf.errors import Error, UsageError

__all__ = ["make_server", "tls_context"]


def tls_context(cert: Path, key: Path | bytes, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key`` (a file, or PEM bytes, which are given to
    OpenSSL through an anonymous memory file and never touch a disk); with ``client_ca``,
    clients must present a certificate it issued."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if isinstance(key, bytes):
            _load_from_memory(ctx, cert, key)
        else:
            ctx.load_cert_chain(cert, key)
        if client_ca is not None:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS certificate, key or client CA: {exc}") from exc
    return ctx


def _load_from_memory(ctx: ssl.SSLContext, cert: Path, pem: bytes) -> None:
    """``ctx.load_cert_chain`` for a key held in memory: through a memfd; where there is
    none (a TEE runtime without ``memfd_create`` or ``/proc``), through a temporary file
    that holds the key encrypted under a random password that stays in this process."""
    try:
        with _memory_file(pem) as path:
            ctx.load_cert_chain(cert, path)
        return
    except OSError:
        pass
    from cryptography.hazmat.primitives import serialization

    password = secrets.token_bytes(32)
    encrypted = serialization.load_pem_private_key(pem, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    with tempfile.NamedTemporaryFile(prefix="securetf-key-") as file:
        file.write(encrypted)
        file.flush()
        ctx.load_cert_chain(cert, file.name, password=password)


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path that reads ``data`` from memory (``memfd_create``), for APIs that take paths."""
    fd = os.memfd_create("securetf-key", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def make_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    limits: HttpLimits,
    max_body_bytes: int,
    render: Callable[[Error], Response],
    graceful_shutdown_seconds: int | None = None,
) -> uvicorn.Server:
    """The server, ready to ``run()``; ``render`` makes the app's error response for a body
    that is too large or too slow."""
    config = uvicorn.Config(
        BodyGuard(app, max_bytes=max_body_bytes, seconds=limits.body_seconds, render=render),
        host=host,
        port=port,
        http=protocol_class(limits, tls, ConnectionCount()),
        ws="none",  # no WebSocket endpoint: an upgrade must not reach a WebSocket stack
        # asyncio's loop, even where uvloop is installed (uvicorn's "auto" would take it):
        # uvloop starts reading after connection_made, so the protocol's pause before its
        # TLS upgrade is lost and the ClientHello reaches the HTTP parser (handshakes time out).
        loop="asyncio",
        timeout_keep_alive=limits.idle_seconds,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        log_level="warning",
        access_log=False,
        # The caller's address is the socket's peer: a client's X-Forwarded-For would let it
        # pick a new address for each request (the CAS limits refusals per address).
        proxy_headers=False,
    )
    return uvicorn.Server(config)

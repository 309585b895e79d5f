"""The capture helpers read what they claim to: a real ClientHello's server name."""

from __future__ import annotations

import contextlib
import ssl

from .lab import SERVER_NAME, client_hello


def _hello(server_hostname: str | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=server_hostname)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def test_client_hello_shows_a_server_name_sent() -> None:
    extensions = client_hello(_hello("worker-1.pol"))
    assert extensions is not None
    assert b"worker-1.pol" in extensions[SERVER_NAME]


def test_client_hello_without_a_server_name() -> None:
    extensions = client_hello(_hello(None))
    assert extensions is not None
    assert SERVER_NAME not in extensions
    assert 43 in extensions  # supported_versions: the parse reached the extensions


def test_not_a_client_hello() -> None:
    assert client_hello(b"\x17\x03\x03\x00\x10" + bytes(16)) is None

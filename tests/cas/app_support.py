"""The CAS's HTTP API in-process: anonymous callers from an address, and an owner's SDK client."""

from __future__ import annotations

import time
from typing import Any, cast

from fastapi.testclient import TestClient

from securetf.cas import Cas
from securetf.cas.api import create_app
from securetf.client import CasClient
from securetf.client.pins import CasPin
from securetf.crypto.x509ca import EcKey, self_signed

from .support import AUDIT_KEY, MEASUREMENT

CAS_URL = "https://cas.test:8081"


def anonymous(cas: Cas, source: str = "203.0.113.7") -> TestClient:
    """Requests to the API as they arrive from ``source`` (what ``request.client.host`` says)."""
    # The identity endpoint is not used by these tests: only the audit key signs here.
    app = create_app(cas, cast(Any, None))
    return TestClient(app, base_url=CAS_URL, client=(source, 50000), raise_server_exceptions=True)


def owner_client(cas: Cas) -> CasClient:
    """The SDK's client, pinned to a CAS whose audit key is :data:`AUDIT_KEY`, talking to
    ``cas`` in-process instead of over TLS (the pinning itself is tested in test_server)."""
    cert = self_signed(EcKey.generate(), "cas", ["cas.test"], now=time.time(), valid_days=1)
    pin = CasPin(
        url=CAS_URL,
        certificate_pem=cert.decode(),
        audit_public_key=AUDIT_KEY.verify_key().to_text(),
        measurement="sha256:" + MEASUREMENT.hex(),
        tee="sim",
    )
    client = CasClient(pin)
    client._clients[0] = anonymous(cas, "198.51.100.1")  # the transport of its one CAS
    return client

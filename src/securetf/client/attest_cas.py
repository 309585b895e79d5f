"""Verifying a CAS before trusting it: its evidence must bind the very certificate it
presents in the TLS handshake, a fresh nonce of ours, and the expected measurement."""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Collection

from securetf.attestation import appraise, verify_evidence
from securetf.client.pins import CasPin, split_url
from securetf.crypto import Certificate, VerifyKey, constant_time_equal, random_bytes
from securetf.errors import AttestationError, Error, UsageError
from securetf.protocol import CasIdentityDoc, cas_report_data

TIMEOUT = 10.0


def _fetch_identity(url: str, nonce: bytes) -> tuple[CasIdentityDoc, bytes]:
    """GET /v1/identity without trusting the certificate yet; return it with the peer's DER."""
    host, port = split_url(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # trust comes from the evidence checked below
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=TIMEOUT)
    try:
        query = base64.urlsafe_b64encode(nonce).decode().rstrip("=")
        conn.request("GET", f"/v1/identity?nonce={query}")
        sock = conn.sock
        peer = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        response = conn.getresponse()
        body = response.read()
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise UsageError(f"cannot reach the CAS at {url}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200 or peer is None:
        raise AttestationError(f"the CAS at {url} did not return its identity ({response.status})")
    try:
        return CasIdentityDoc.model_validate_json(body), peer
    except ValueError as exc:
        raise AttestationError(f"the CAS at {url} sent a malformed identity document") from exc


def attest_cas(
    url: str,
    *,
    now: int,
    expect_measurement: str | None = None,
    allowed_tees: Collection[str] = ("sgx", "tdx", "sev-snp"),
    sim_trust: Collection[VerifyKey] = (),
) -> CasPin:
    """Verify the CAS at ``url``; return the pin to save. Raises on any mismatch.

    1. Fetch the identity over TLS, recording the certificate the server presented.
    2. The document's certificate is exactly the presented one.
    3. The evidence verifies for its TEE, which must be allowed.
    4. Its report data binds that certificate, the audit key and our fresh nonce.
    5. Its measurement is the expected one (or, when none is given, the one it claims).
    """
    nonce = random_bytes(32)
    doc, peer_der = _fetch_identity(url, nonce)
    try:
        cert = Certificate.load(doc.certificate_pem.encode())
        audit_key = VerifyKey.from_text(doc.audit_public_key)
    except Error as exc:
        raise AttestationError(f"the CAS identity is malformed: {exc}") from None
    if not constant_time_equal(cert.der, peer_der):
        raise AttestationError(
            "the CAS presented another certificate than the one its evidence names "
            "(a machine in the middle?)"
        )
    claims = verify_evidence(doc.tee, doc.evidence, now=now, sim_trust=sim_trust)
    expected = expect_measurement or doc.measurement
    if not expected.startswith("sha256:"):
        raise UsageError("--expect-measurement takes sha256:<64 hex digits>")
    appraise(
        claims,
        allowed_tees=allowed_tees,
        expected_measurements=[bytes.fromhex(expected.split(":", 1)[1])],
        expected_report_data=cas_report_data(cert.der, audit_key.raw(), nonce),
    )
    return CasPin(
        url=url,
        certificate_pem=doc.certificate_pem,
        audit_public_key=doc.audit_public_key,
        measurement="sha256:" + claims.measurement.hex(),
        tee=claims.tee,
    )


__all__ = ["attest_cas"]

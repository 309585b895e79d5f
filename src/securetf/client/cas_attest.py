"""Verifying a CAS before trusting it: its evidence must bind the very certificate it
presents in the TLS handshake and a fresh nonce of ours, and show the expected code.

What "the expected code" is depends on the TEE the CAS runs on:

- ``sim``: the evidence reports the SHA-256 of the CAS's securetf package; it must equal
  ``expect_measurement`` (``sha256:<hex>``), else the measurement the CAS itself claims.
- ``sgx``, ``tdx``, ``sev-snp``: the evidence reports the image the TEE launched
  (MRENCLAVE; MRTD and RTMR0-3; the launch measurement). It is compared with
  ``expect_reference``: reference values as ``securetf attest verify --json`` prints them
  under ``reference`` (:func:`expected_references` lists the forms), and/or with
  ``expect_measurement`` (``<tee>:<hex>``, the form a pin records). Without either, a
  genuine TEE's evidence is accepted, its code identity unchecked:
  :attr:`CasAttestation.code_checked` is False, and :func:`attest_cas` warns.

Hardware evidence needs collateral: SGX/TDX quotes Intel's (from a
:class:`~securetf.attestation.collateral.CollateralSource`: cache, offline bundle, PCCS),
SEV-SNP reports the chip's VCEK (the one the CAS attaches to its identity document, else
from the source: cache, bundle, AMD's KDS). Evidence of emulated hardware verifies only
with ``test_roots``, and is accepted only when ``allowed_tees`` also names ``test-roots``.
"""

from __future__ import annotations

import base64
import http.client
import logging
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from securetf._logutil import warn_loudly
from securetf.attestation import (
    Claims,
    appraise,
    reference_values,
    verify_evidence,
)
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.claims import TEES, TEST_ROOTS
from securetf.attestation.collateral import CollateralSource
from securetf.attestation.dcap import Collateral
from securetf.client._cas_refs import (
    HARDWARE_TEES,
    check_image,
    claimed_measurement,
    expected_references,
    named_tees,
    parse_measurement,
    pin_measurement,
    reference_json,
)
from securetf.client.pins import CasPin, split_url
from securetf.crypto import Certificate, VerifyKey, constant_time_equal, random_bytes
from securetf.errors import AttestationError, Error, UsageError
from securetf.protocol import CasIdentityDoc, cas_report_data
from securetf.protocol.logkey import check_vkey_endorsement, check_witnesses_endorsement

__all__ = [
    "CasAttestation",
    "attest_cas",
    "expected_references",
    "pin_measurement",
    "reference_json",
    "unchecked_warning",
    "verify_cas",
]

_log = logging.getLogger(__name__)

TIMEOUT = 10.0


@dataclass(frozen=True)
class CasAttestation:
    """What attesting a CAS established.

    ``pin``: what to save (:func:`securetf.client.save_pin`). ``claims``: the verified
    evidence. ``reference``: its reference values (``{}`` for sim), the object to give as
    ``expect_reference`` next time. ``code_checked``: whether the CAS's code identity was
    compared with an expectation of the caller's (False: a genuine TEE, any image).
    """

    pin: CasPin
    claims: Claims
    reference: Mapping[str, Any] = field(default_factory=dict)
    code_checked: bool = False
    #: The identity document's pointer to the CAS's identity entry in its log, and the
    #: measurement it states (prove both with :func:`securetf.client.caslog.prove_identity`).
    identity_log_index: int | None = None
    identity_measurement: str = ""


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


# ---------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------


def _verify(
    doc: CasIdentityDoc,
    *,
    now: int,
    sim_trust: Collection[VerifyKey],
    test_roots: EmulatedRoots | None,
    collateral: CollateralSource | None,
) -> Claims:
    """Verify the document's evidence with whatever its TEE needs."""
    tee = doc.tee
    if tee in ("sgx", "tdx"):
        if collateral is None:
            raise AttestationError(
                f"the CAS runs on {tee}, whose quotes need Intel's collateral: "
                "configure --pccs / SECURETF_PCCS_URL or --collateral-bundle FILE"
            )
        dcap: Collateral = collateral.dcap(tee, doc.evidence, now=now)
        return _checked(tee, doc.evidence, now=now, collateral=dcap, test_roots=test_roots)
    if tee == "sev-snp":
        return _verify_snp(doc, now=now, test_roots=test_roots, collateral=collateral)
    return _checked(tee, doc.evidence, now=now, sim_trust=sim_trust)


def _verify_snp(
    doc: CasIdentityDoc,
    *,
    now: int,
    test_roots: EmulatedRoots | None,
    collateral: CollateralSource | None,
) -> Claims:
    """The VCEK the CAS attached first; if it is missing or fails, the collateral source's."""
    first: AttestationError | None = None
    if doc.vcek is not None:
        try:
            return _checked("sev-snp", doc.evidence, now=now, vcek=doc.vcek, test_roots=test_roots)
        except AttestationError as exc:
            if collateral is None:
                raise
            first = exc
    if collateral is None:
        raise AttestationError(
            "the CAS runs on sev-snp and attached no VCEK to its evidence: configure "
            "--kds / SECURETF_KDS_URL or --collateral-bundle FILE"
        )
    try:
        vcek = collateral.vcek(doc.evidence, now=now)
        return _checked("sev-snp", doc.evidence, now=now, vcek=vcek, test_roots=test_roots)
    except AttestationError as exc:
        if first is None:
            raise
        raise AttestationError(
            f"with the VCEK the CAS attached: {first}; with one from the collateral source: {exc}"
        ) from None


def _checked(tee: str, evidence: bytes, *, now: int, **kwargs: Any) -> Claims:
    """:func:`verify_evidence`, where a malformed input is the CAS's doing: a refusal."""
    try:
        return verify_evidence(tee, evidence, now=now, **kwargs)
    except UsageError as exc:
        raise AttestationError(f"the CAS's {tee} evidence is refused: {exc}") from None


def verify_cas(
    url: str,
    *,
    now: int,
    expect_measurement: str | None = None,
    expect_reference: Mapping[str, Any] | None = None,
    allowed_tees: Collection[str] = HARDWARE_TEES,
    sim_trust: Collection[VerifyKey] = (),
    test_roots: EmulatedRoots | None = None,
    collateral: CollateralSource | None = None,
) -> CasAttestation:
    """Verify the CAS at ``url``; return what was established. Raises on any mismatch.

    1. Fetch the identity over TLS, recording the certificate the server presented.
    2. The document's certificate is exactly the presented one.
    3. The evidence's TEE is allowed, and the evidence verifies for it (with collateral or
       a VCEK for hardware; chained to ``test_roots`` only when they are given).
    4. Appraisal: TEE and roots allowed (``test-roots`` in ``allowed_tees`` for emulated
       hardware), not debug, TCB up to date, and the report data binds that certificate,
       the audit key and our fresh nonce.
    5. The code: sim, the expected measurement (or, when none is given, the one the CAS
       claims); hardware, the expected reference values and/or measurement, if given.
    6. The transparency log's key, if the CAS publishes one, is endorsed by the audit key.
    """
    refs = expected_references(expect_reference) if expect_reference is not None else None
    expected = parse_measurement(expect_measurement) if expect_measurement else None
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
    allowed = {t for t in allowed_tees if t != TEST_ROOTS}
    if doc.tee not in TEES or doc.tee not in allowed:
        hint = (
            " (simulation protects nothing; for development, accept it by name: "
            "securetf cas attest --allow-sim)"
            if doc.tee == "sim"
            else ""
        )
        raise AttestationError(
            f"the CAS runs on TEE {doc.tee!r}, which is not allowed{hint}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    claims = _verify(
        doc, now=now, sim_trust=sim_trust, test_roots=test_roots, collateral=collateral
    )
    binding = cas_report_data(cert.der, audit_key.raw(), nonce)
    if claims.tee == "sim":
        if expected is not None and expected[0] != "sim":
            raise AttestationError(
                f"the CAS runs on sim, the expected measurement is for {expected[0]}"
            )
        if refs is not None:
            raise AttestationError(
                "the CAS runs on sim, whose evidence has no reference values; expected "
                f"were values for {', '.join(named_tees(refs))}"
            )
        measurement = expected[1] if expected else claimed_measurement(doc)
        appraise(
            claims,
            allowed_tees=allowed_tees,
            expected_measurements=[measurement],
            expected_report_data=binding,
        )
        code_checked = expected is not None
    else:
        # Everything but the image (accepted here as it is), then the image, by name.
        appraise(
            claims,
            allowed_tees=allowed_tees,
            expected_measurements=[claims.measurement],
            expected_report_data=binding,
        )
        check_image(claims, refs=refs, expected=expected)
        code_checked = refs is not None or expected is not None
    # 6. The log key, endorsed by the audit key just attested (a CAS older than the log
    #    publishes none; the log commands then refuse to run against it).
    log_vkey = None
    if doc.log_vkey is not None or doc.log_vkey_signature is not None:
        check_vkey_endorsement(audit_key, doc.log_vkey or "", doc.log_vkey_signature or b"")
        log_vkey = doc.log_vkey
    # 7. The witnesses its checkpoints need, endorsed by the same key.
    witnesses = doc.log_witnesses or []
    threshold = doc.log_witness_threshold or 0
    if witnesses or threshold or doc.log_witnesses_signature is not None:
        check_witnesses_endorsement(
            audit_key, log_vkey or "", witnesses, threshold, doc.log_witnesses_signature or b""
        )
    pin = CasPin(
        url=url,
        certificate_pem=doc.certificate_pem,
        audit_public_key=doc.audit_public_key,
        measurement=pin_measurement(claims),
        tee=claims.tee,
        log_vkey=log_vkey,
        log_witnesses=tuple(witnesses),
        log_witness_threshold=threshold,
    )
    return CasAttestation(
        pin, claims, reference_values(claims), code_checked, doc.log_index, doc.measurement
    )


def attest_cas(
    url: str,
    *,
    now: int,
    expect_measurement: str | None = None,
    expect_reference: Mapping[str, Any] | None = None,
    allowed_tees: Collection[str] = HARDWARE_TEES,
    sim_trust: Collection[VerifyKey] = (),
    test_roots: EmulatedRoots | None = None,
    collateral: CollateralSource | None = None,
) -> CasPin:
    """Verify the CAS at ``url`` (:func:`verify_cas`); return the pin to save.

    A hardware CAS whose code identity was not checked (no ``expect_reference`` nor
    ``expect_measurement``) is accepted with a loud warning that names its reference values.
    """
    result = verify_cas(
        url,
        now=now,
        expect_measurement=expect_measurement,
        expect_reference=expect_reference,
        allowed_tees=allowed_tees,
        sim_trust=sim_trust,
        test_roots=test_roots,
        collateral=collateral,
    )
    if result.claims.tee != "sim" and not result.code_checked:
        warn_loudly(
            _log,
            "%s; its reference values: %s",
            unchecked_warning(result),
            reference_json(result.reference),
        )
    return result.pin


def unchecked_warning(result: CasAttestation) -> str:
    """The warning for a hardware CAS whose code identity was not compared."""
    return (
        f"the CAS at {result.pin.url} gave valid {result.claims.tee} evidence, but its code "
        f"identity was NOT checked: any image on a {result.claims.tee} machine would have "
        "passed. Compare its reference values with the ones its operator publishes, then "
        "pin them with --expect-reference FILE"
    )

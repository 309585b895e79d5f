"""The keys collateral is found by: a quote's PCK chain, a report's chip id and TCB."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from securetf.attestation._dcap_layout import TEE_TDX, QuoteLayout, check_quote_layout
from securetf.attestation.collateral._common import _DCAP_TEES, MAX_VCEK_SIZE
from securetf.attestation.snp_report import SnpReport
from securetf.crypto import Certificate, verify_ecdsa_p384_sha384
from securetf.errors import AttestationError, AuthenticationError, UsageError

# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _layout(quote: bytes, roots: Sequence[Certificate]) -> QuoteLayout:
    """The quote's layout, its chain ending in Intel's root or one of ``roots`` (test roots)."""
    try:
        return check_quote_layout(quote)
    except AttestationError:
        for root in roots:
            try:
                return check_quote_layout(quote, root=root)
            except AttestationError:
                continue
        raise


def _dcap_key(tee: str, quote: bytes, roots: Sequence[Certificate] = ()) -> str:
    """The SHA-256 (hex) of ``quote``'s PCK chain as canonical PEM; the quote must be ``tee``."""
    if tee not in _DCAP_TEES:
        raise UsageError(f"DCAP collateral is for sgx or tdx quotes, not {tee!r}")
    layout = _layout(quote, roots)
    if layout.tee_type != _DCAP_TEES[tee]:
        actual = "tdx" if layout.tee_type == TEE_TDX else "sgx"
        raise AttestationError(f"this is a {actual} quote, not {tee}; use --tee {actual}")
    return hashlib.sha256(b"".join(cert.pem() for cert in layout.pck_chain)).hexdigest()


def _snp_key(report: bytes) -> tuple[SnpReport, str, str]:
    parsed = SnpReport.parse(report)
    if not any(parsed.chip_id):
        raise AttestationError(
            "the SEV-SNP report masks its chip id (MASK_CHIP_ID), so its VCEK cannot be "
            "looked up; pass the chip's VCEK with the evidence instead"
        )
    return parsed, parsed.chip_id.hex(), parsed.reported_tcb.hex()


def _check_vcek_signed(parsed: SnpReport, cert: Certificate) -> None:
    """Raise AttestationError unless ``cert``'s key made ``parsed``'s signature."""
    try:
        verify_ecdsa_p384_sha384(cert.public_key_der(), parsed.r, parsed.s, parsed.signed_bytes)
    except (AuthenticationError, UsageError):
        raise AttestationError(
            "this VCEK did not sign the SEV-SNP report (a VCEK of another chip or TCB, or "
            "a tampered report)"
        ) from None


def _load_vcek(data: bytes, what: str) -> Certificate:
    if len(data) > MAX_VCEK_SIZE:
        raise UsageError(f"{what} is larger than {MAX_VCEK_SIZE} bytes")
    return Certificate.load(data, what=what)

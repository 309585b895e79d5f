"""One entry point for every verifier, and the decoding of evidence files.

Callers (the CAS, the CLI, clients) pass the TEE they expect; evidence of another TEE is
refused by the verifier for that TEE, never silently routed elsewhere.
"""

from __future__ import annotations

import binascii
import dataclasses
import re
from collections.abc import Collection, Mapping

from securetf.attestation._dcap_layout import check_quote_layout
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.claims import Claims, check_tee
from securetf.attestation.dcap import Collateral, verify_dcap
from securetf.attestation.sim import verify_sim
from securetf.attestation.snp import verify_snp
from securetf.crypto import Certificate, VerifyKey
from securetf.errors import AttestationError, Error, UsageError

__all__ = ["MAX_EVIDENCE_SIZE", "decode_evidence", "verify_evidence"]

MAX_EVIDENCE_SIZE = 256 * 1024
_HEX_TEXT = re.compile(rb"\s*(?:[0-9a-fA-F]{2}\s*)+")


def decode_evidence(data: bytes) -> bytes:
    """Evidence from a file: binary as is, or hex text (whitespace allowed) decoded."""
    if len(data) > MAX_EVIDENCE_SIZE:
        raise UsageError(f"evidence is {len(data)} bytes, more than {MAX_EVIDENCE_SIZE} allowed")
    if not data.strip():
        raise UsageError("evidence is empty")
    if _HEX_TEXT.fullmatch(data):
        try:
            return binascii.unhexlify(b"".join(data.split()))
        except binascii.Error as exc:  # pragma: no cover - the pattern rules this out
            raise UsageError(f"evidence is not valid hex: {exc}") from None
    return data


def verify_evidence(
    tee: str,
    evidence: bytes,
    *,
    now: int,
    collateral: Collateral | None = None,
    vcek: bytes | None = None,
    sim_trust: Collection[VerifyKey] = frozenset(),
    min_snp_tcb: Mapping[str, int] | None = None,
    test_roots: EmulatedRoots | None = None,
) -> Claims:
    """Verify ``evidence`` as ``tee`` evidence at ``now``; return claims or raise.

    Hardware evidence chains to the vendor's bundled roots, or, when ``test_roots`` are
    given and the evidence's chain ends in one of them, to that test root; the claims then
    say ``test_roots`` (which appraisal refuses unless the policy names ``test-roots``).
    """
    check_tee(tee)
    if tee == "sim":
        return verify_sim(evidence, trusted=sim_trust, now=now)
    if tee == "sev-snp":
        if vcek is None:
            raise UsageError("SEV-SNP evidence needs the chip's VCEK certificate (--vcek FILE)")
        amd = test_roots.amd_issuer_of(_vcek(vcek)) if test_roots is not None else None
        claims = verify_snp(evidence, vcek, now=now, min_tcb=min_snp_tcb, roots=amd)
        return dataclasses.replace(claims, test_roots=True) if amd is not None else claims
    if collateral is None:
        raise UsageError(f"{tee} quotes need their collateral (--collateral FILE)")
    root = _dcap_test_root(evidence, test_roots)
    return verify_dcap(evidence, collateral, tee=tee, now=now, root=root)


def _vcek(vcek: bytes) -> Certificate:
    try:
        return Certificate.load(vcek, what="VCEK")
    except Error as exc:
        raise UsageError(str(exc)) from None


def _dcap_test_root(quote: bytes, test_roots: EmulatedRoots | None) -> Certificate | None:
    """The test root the quote's PCK chain ends in, or None (the bundled Intel root)."""
    if test_roots is None or test_roots.intel is None:
        return None
    try:
        check_quote_layout(quote, root=test_roots.intel)
    except (AttestationError, UsageError):
        return None  # not a test quote: the bundled root's checks decide (and explain)
    return test_roots.intel

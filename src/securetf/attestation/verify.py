"""One entry point for every verifier, and the decoding of evidence files.

Callers (the CAS, the CLI, clients) pass the TEE they expect; evidence of another TEE is
refused by the verifier for that TEE, never silently routed elsewhere.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Collection, Mapping

from securetf.attestation.claims import Claims, check_tee
from securetf.attestation.dcap import Collateral, verify_dcap
from securetf.attestation.sim import verify_sim
from securetf.attestation.snp import verify_snp
from securetf.crypto import VerifyKey
from securetf.errors import UsageError

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
) -> Claims:
    """Verify ``evidence`` as ``tee`` evidence at ``now``; return claims or raise."""
    check_tee(tee)
    if tee == "sim":
        return verify_sim(evidence, trusted=sim_trust, now=now)
    if tee == "sev-snp":
        if vcek is None:
            raise UsageError("SEV-SNP evidence needs the chip's VCEK certificate (--vcek FILE)")
        return verify_snp(evidence, vcek, now=now, min_tcb=min_snp_tcb)
    if collateral is None:
        raise UsageError(f"{tee} quotes need their collateral (--collateral FILE)")
    return verify_dcap(evidence, collateral, tee=tee, now=now)

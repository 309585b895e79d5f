"""AMD SEV-SNP reports: verified against the VCEK and AMD's bundled ARK/ASK.

Steps:

1. Parse the report strictly (:class:`SnpReport`): size, version, algorithm, padding.
2. The report is signed by a VCEK (not a VLEK, which securetf does not support yet).
3. The VCEK's product (Milan, Genoa, Turin) is known, and agrees with the report's CPUID.
4. Chain: ARK self-signed, ASK signed by ARK, VCEK signed by ASK (RSA-PSS SHA-384), all
   valid at ``now``; the VCEK key is P-384.
5. The VCEK was issued for the report's chip id and reported TCB.
6. The report's ECDSA P-384 SHA-384 signature over bytes 0x000-0x29F, by the VCEK.
7. TCB status: AMD gives no verdict. ``UpToDate`` means the reported TCB is at least
   ``min_tcb`` in every part (when given); ``OutOfDate`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from securetf.attestation._amd_roots import AmdRoots, bundled_roots
from securetf.attestation._snp_vcek import check_chain, check_vcek_matches, vcek_product
from securetf.attestation.claims import Claims
from securetf.attestation.snp_report import SnpReport, TcbVersion, product_from_cpuid
from securetf.crypto import Certificate, verify_ecdsa_p384_sha384
from securetf.errors import AttestationError, AuthenticationError, UsageError

__all__ = ["verify_snp"]

_VCEK = 0


_TCB_PARTS = frozenset({"bootloader", "tee", "snp", "microcode", "fmc"})


def _status(tcb: TcbVersion, min_tcb: Mapping[str, int] | None) -> str:
    if not min_tcb:
        return "UpToDate"
    unknown = sorted(set(min_tcb) - _TCB_PARTS)
    if unknown:
        raise UsageError(
            f"unknown SNP TCB part(s) {', '.join(unknown)}; use {', '.join(sorted(_TCB_PARTS))}"
        )
    have = tcb.items()
    behind = [k for k, v in min_tcb.items() if have.get(k, 0) < v]
    return "OutOfDate" if behind else "UpToDate"


def verify_snp(
    report: bytes,
    vcek: bytes,
    *,
    now: int,
    roots: Mapping[str, AmdRoots] | None = None,
    min_tcb: Mapping[str, int] | None = None,
) -> Claims:
    """Verify an SEV-SNP report with the VCEK (DER or PEM) of its chip, at ``now``.

    ``roots`` replaces the bundled ARK/ASK (tests only). Returns the claims; raises
    :class:`AttestationError` (or :class:`UsageError` for a VCEK that is not a certificate).
    """
    anchors = bundled_roots() if roots is None else roots
    # 1.-2. Report.
    parsed = SnpReport.parse(report)
    if parsed.signing_key != _VCEK:
        raise AttestationError(
            f"the report is signed by key type {parsed.signing_key} (1 = VLEK); "
            "securetf verifies VCEK-signed reports only"
        )
    # 3. Product.
    cert = Certificate.load(vcek, what="VCEK")
    product = vcek_product(cert, anchors)
    if parsed.cpuid is not None:
        named = product_from_cpuid(parsed.cpuid[0], parsed.cpuid[1])
        if named is not None and named != product:
            raise AttestationError(f"the report comes from a {named} CPU but the VCEK is {product}")
    tcb = TcbVersion.parse(parsed.reported_tcb, product)
    # 4. Chain.
    check_chain(cert, anchors[product], product, now)
    # 5. Chip and TCB.
    check_vcek_matches(cert, parsed.chip_id, tcb)
    # 6. Signature over the exact bytes received.
    try:
        verify_ecdsa_p384_sha384(cert.public_key_der(), parsed.r, parsed.s, parsed.signed_bytes)
    except AuthenticationError:
        raise AttestationError(
            "the SEV-SNP report's signature does not verify with this VCEK "
            "(tampered report, or a VCEK of another chip)"
        ) from None
    # 7. Claims.
    numbers = {f"reported_{k}": v for k, v in tcb.items().items()}
    for name in ("current", "committed", "launch"):
        raw = getattr(parsed, f"{name}_tcb")
        numbers.update(
            {f"{name}_{k}": v for k, v in TcbVersion.parse(raw, product).items().items()}
        )
    numbers.update(
        guest_svn=parsed.guest_svn,
        policy=parsed.policy,
        vmpl=parsed.vmpl,
        platform_info=parsed.platform_info,
        version=parsed.version,
    )
    return Claims(
        tee="sev-snp",
        measurement=parsed.measurement,
        report_data=parsed.report_data,
        signer=f"amd-vcek:{product}:{parsed.chip_id.hex()}",
        tcb_status=_status(tcb, min_tcb),
        debug=parsed.debug,
        measurements={
            "host_data": parsed.host_data,
            "id_key_digest": parsed.id_key_digest,
            "author_key_digest": parsed.author_key_digest,
            "family_id": parsed.family_id,
            "image_id": parsed.image_id,
            "report_id": parsed.report_id,
            "chip_id": parsed.chip_id,
        },
        tcb=numbers,
    )

"""The VCEK side of SEV-SNP: its chain to AMD's ARK, and what its extensions certify.

AMD's VCEK extensions (VCEK specification, "Certificate Extensions"), OID 1.3.6.1.4.1.3704.1:
``.2`` product name, ``.3.1`` boot loader SPL, ``.3.2`` TEE SPL, ``.3.3`` SNP SPL,
``.3.8`` microcode SPL, ``.3.9`` FMC SPL (Turin), ``.4`` hardware ID (the chip id;
64 bytes, 8 on Turin). The SPLs are DER INTEGERs; the hardware ID is raw bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from securetf.attestation._amd_roots import AmdRoots
from securetf.attestation.snp_report import TcbVersion
from securetf.crypto import Certificate
from securetf.errors import AttestationError, AuthenticationError

__all__ = ["check_chain", "check_vcek_matches", "vcek_product"]

_AMD_SCHEME = "rsa-pss-sha384/48"
_OID = "1.3.6.1.4.1.3704.1."
_SPL_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_HWID_OID = _OID + "4"


def vcek_product(vcek: Certificate, roots: Mapping[str, AmdRoots]) -> str:
    """The product whose ASK issued ``vcek`` (by issuer name: ``SEV-Milan``...)."""
    for product, anchors in roots.items():
        if vcek.issuer_cn == anchors.ask.subject_cn:
            return product
    raise AttestationError(
        f"the VCEK is issued by {vcek.issuer_cn!r}, not by the ASK of a known product "
        f"({', '.join(roots)}); is it a VCEK?"
    )


def _signed(child: Certificate, parent: Certificate, what: str, now: int) -> None:
    if child.signature_scheme() != _AMD_SCHEME:
        raise AttestationError(f"{what} is signed with {child.signature_scheme()}, not RSA-PSS")
    try:
        child.verify_signed_by(parent)
    except AuthenticationError as exc:
        raise AttestationError(f"{what}: {exc}") from None
    if not child.valid_at(now):
        raise AttestationError(
            f"{what} is not valid at {now} (valid {child.not_before} to {child.not_after})"
        )


def check_chain(vcek: Certificate, anchors: AmdRoots, product: str, now: int) -> None:
    """VCEK -> ASK -> ARK, ARK self-signed, every signature RSA-PSS SHA-384, all valid now."""
    _signed(anchors.ark, anchors.ark, f"ARK-{product} (self-signed)", now)
    _signed(anchors.ask, anchors.ark, f"ASK of {product}", now)
    _signed(vcek, anchors.ask, f"VCEK (not signed by the AMD ASK of {product})", now)
    if vcek.public_key_kind() != "ec-secp384r1":
        raise AttestationError(f"the VCEK holds a {vcek.public_key_kind()} key, not P-384")


def _der_integer(value: bytes) -> int:
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2 or value[1] > 8:
        raise AttestationError("a VCEK TCB extension is not a small DER INTEGER")
    return int.from_bytes(value[2:], "big", signed=True)


def check_vcek_matches(vcek: Certificate, chip_id: bytes, tcb: TcbVersion) -> None:
    """The VCEK was issued for this chip (unless the report masks its id) and this TCB."""
    hwid = vcek.extension_value(_HWID_OID)
    if hwid is not None and len(hwid) == 66 and hwid[:2] == b"\x04\x40":
        hwid = hwid[2:]  # tolerate an OCTET STRING wrapper
    # An all-zero chip id means the guest masked it (MASK_CHIP_ID): nothing to compare.
    if hwid is not None and any(chip_id) and (not hwid or hwid != chip_id[: len(hwid)]):
        raise AttestationError(
            "the report's chip id is not the chip this VCEK was issued for "
            "(report from another chip, or the wrong VCEK)"
        )
    for name, value in tcb.items().items():
        ext = vcek.extension_value(_OID + _SPL_OIDS[name])
        if ext is not None and _der_integer(ext) != value:
            raise AttestationError(
                f"the report's reported TCB {name}={value} is not the TCB this VCEK was "
                f"issued for ({name}={_der_integer(ext)}); fetch the VCEK for this TCB"
            )

"""The AMD SEV-SNP attestation report: a validating parser (SEV-SNP ABI spec, Table
"ATTESTATION_REPORT Structure", report versions 2 to 5).

Offsets used (all little-endian)::

    0x000 VERSION u32         0x004 GUEST_SVN u32     0x008 POLICY u64
    0x010 FAMILY_ID 16        0x020 IMAGE_ID 16       0x030 VMPL u32
    0x034 SIGNATURE_ALGO u32  0x038 CURRENT_TCB 8     0x040 PLATFORM_INFO u64
    0x048 flags u32: bit 1 MASK_CHIP_ID, bits 4:2 SIGNING_KEY (0 VCEK, 1 VLEK)
    0x050 REPORT_DATA 64      0x090 MEASUREMENT 48    0x0C0 HOST_DATA 32
    0x0E0 ID_KEY_DIGEST 48    0x110 AUTHOR_KEY_DIGEST 48
    0x140 REPORT_ID 32        0x160 REPORT_ID_MA 32   0x180 REPORTED_TCB 8
    0x188 CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (v3+; zero before)
    0x1A0 CHIP_ID 64          0x1E0 COMMITTED_TCB 8   0x1F0 LAUNCH_TCB 8
    0x2A0 SIGNATURE: R 72, S 72 (little-endian, zero-extended), 368 reserved
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from securetf.errors import AttestationError

__all__ = ["REPORT_SIZE", "SIGNED_SIZE", "SnpReport", "TcbVersion", "product_from_cpuid"]

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SUPPORTED_VERSIONS = range(2, 6)
_ECDSA_P384_SHA384 = 1
_COMPONENT = 72  # R and S are each 72 bytes; a P-384 value uses only the low 48
_P384_BYTES = 48
POLICY_DEBUG = 1 << 19
# The byte-string fields: name -> (offset, size), per the table above.
_BYTE_FIELDS = {
    "family_id": (0x10, 16),
    "image_id": (0x20, 16),
    "current_tcb": (0x38, 8),
    "report_data": (0x50, 64),
    "measurement": (0x90, 48),
    "host_data": (0xC0, 32),
    "id_key_digest": (0xE0, 48),
    "author_key_digest": (0x110, 48),
    "report_id": (0x140, 32),
    "reported_tcb": (0x180, 8),
    "chip_id": (0x1A0, 64),
    "committed_tcb": (0x1E0, 8),
    "launch_tcb": (0x1F0, 8),
}


@dataclass(frozen=True)
class TcbVersion:
    """A TCB_VERSION: security patch levels of the firmware parts (Turin adds ``fmc``)."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def parse(cls, raw: bytes, product: str) -> TcbVersion:
        if product == "Turin":
            return cls(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
        return cls(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])

    def items(self) -> dict[str, int]:
        parts = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp}
        parts["microcode"] = self.microcode
        if self.fmc is not None:
            parts["fmc"] = self.fmc
        return parts


def product_from_cpuid(family: int, model: int) -> str | None:
    """The product a v3+ report's CPUID family/model names, if securetf knows it."""
    if family == 0x19 and model <= 0x0F:
        return "Milan"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "Genoa"
    if family == 0x1A and model <= 0x1F:
        return "Turin"
    return None


@dataclass(frozen=True)
class SnpReport:
    raw: bytes
    version: int
    guest_svn: int
    policy: int
    vmpl: int
    platform_info: int
    flags: int
    family_id: bytes
    image_id: bytes
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    chip_id: bytes
    current_tcb: bytes
    reported_tcb: bytes
    committed_tcb: bytes
    launch_tcb: bytes
    cpuid: tuple[int, int, int] | None
    r: int
    s: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key(self) -> int:
        return (self.flags >> 2) & 0x7

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)

    @classmethod
    def parse(cls, raw: bytes) -> SnpReport:
        """Validate and parse; raise :class:`AttestationError` on any malformed byte."""
        if len(raw) != REPORT_SIZE:
            raise AttestationError(
                f"an SEV-SNP report is {REPORT_SIZE} bytes, got {len(raw)} (truncated or oversized)"
            )
        version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
        vmpl, algo = struct.unpack_from("<II", raw, 0x30)
        platform_info, flags = struct.unpack_from("<QI", raw, 0x40)
        if version not in SUPPORTED_VERSIONS:
            raise AttestationError(
                f"SEV-SNP report version {version} is not supported (2 to 5); "
                "is this an SNP report?"
            )
        if algo != _ECDSA_P384_SHA384:
            raise AttestationError(f"SEV-SNP signature algorithm {algo} is not ECDSA P-384")
        sig = raw[SIGNED_SIZE:]
        r_raw, s_raw = sig[:_COMPONENT], sig[_COMPONENT : 2 * _COMPONENT]
        # The unsigned part must be exactly the two values, zero-padded: nothing else.
        padding = r_raw[_P384_BYTES:] + s_raw[_P384_BYTES:] + sig[2 * _COMPONENT :]
        if any(padding):
            raise AttestationError("SEV-SNP report signature has non-zero reserved bytes")
        fam, mod, step = raw[0x188], raw[0x189], raw[0x18A]
        return cls(
            raw=raw,
            version=version,
            guest_svn=guest_svn,
            policy=policy,
            vmpl=vmpl,
            platform_info=platform_info,
            flags=flags,
            **{name: raw[at : at + size] for name, (at, size) in _BYTE_FIELDS.items()},
            cpuid=(fam, mod, step) if version >= 3 else None,
            r=int.from_bytes(r_raw, "little"),
            s=int.from_bytes(s_raw, "little"),
        )

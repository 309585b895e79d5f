"""SEV-SNP attestation reports and certificate tables in the bytes the hardware writes.

The report is the layout :class:`securetf.attestation.snp_report.SnpReport` parses (SEV-SNP
ABI specification, "ATTESTATION_REPORT Structure"), signed as the PSP signs it: ECDSA P-384
with SHA-384 over bytes 0x000-0x29F, ``r`` and ``s`` little-endian and zero-extended to 72
bytes each. The certificate table is what the host hands the guest next to an extended
report (GHCB specification; configfs-tsm's ``auxblob``), see :mod:`..snp_certs`.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from securetf.attestation.snp_certs import ENTRY_SIZE
from securetf.attestation.snp_report import REPORT_SIZE, SIGNED_SIZE, SUPPORTED_VERSIONS
from securetf.errors import UsageError

__all__ = [
    "CPUIDS",
    "DEFAULT_POLICY",
    "TCB_PARTS",
    "build_cert_table",
    "encode_tcb",
    "sign_report",
]

#: Guest policy: ABI 0.0, SMT allowed (bit 16), the reserved bit 17 that must be one;
#: not debuggable (bit 19), no migration agent, not single-socket.
DEFAULT_POLICY = 0x30000
#: CPUID family, model and stepping a v3+ report of each product carries.
CPUIDS = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}
#: The TCB parts each product's TCB_VERSION holds (Turin adds the FMC).
TCB_PARTS = {
    "Milan": ("bootloader", "tee", "snp", "microcode"),
    "Genoa": ("bootloader", "tee", "snp", "microcode"),
    "Turin": ("fmc", "bootloader", "tee", "snp", "microcode"),
}
_FIRMWARE = bytes([21, 55, 1])  # build, minor, major: SNP firmware 1.55.21
_COMPONENT = 72


def encode_tcb(product: str, tcb: Mapping[str, int]) -> bytes:
    """The 8-byte TCB_VERSION for ``tcb`` (the inverse of :meth:`TcbVersion.parse`)."""
    if product == "Turin":
        positions = {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7}
    else:
        positions = {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7}
    raw = bytearray(8)
    for part, value in tcb.items():
        if part not in positions:
            raise UsageError(f"{product}'s TCB has no part {part!r}; use {', '.join(positions)}")
        if not 0 <= value <= 0xFF:
            raise UsageError(f"TCB part {part}={value} is not a byte (0 to 255)")
        raw[positions[part]] = value
    return bytes(raw)


def _put(raw: bytearray, offset: int, value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise UsageError(f"the report's {name} is {size} bytes, got {len(value)}")
    raw[offset : offset + size] = value


def sign_report(
    key: ec.EllipticCurvePrivateKey,
    *,
    chip_id: bytes,
    reported_tcb: bytes,
    report_data: bytes,
    measurement: bytes,
    version: int = 3,
    policy: int = DEFAULT_POLICY,
    vmpl: int = 0,
    cpuid: tuple[int, int, int] = (0, 0, 0),
    flags: int = 0,
    host_data: bytes = bytes(32),
    guest_svn: int = 0,
    report_id: bytes = bytes(32),
    platform_info: int = 1,
) -> bytes:
    """A report signed by ``key``; current, committed and launch TCB equal ``reported_tcb``.

    Nothing here checks that the fields make sense together (tests need reports that do
    not); :meth:`AmdTestPki.report` is the coherent front end.
    """
    if version not in SUPPORTED_VERSIONS:
        raise UsageError(f"SEV-SNP report version {version} is not one securetf parses (2 to 5)")
    raw = bytearray(REPORT_SIZE)
    struct.pack_into("<IIQ", raw, 0x00, version, guest_svn, policy)
    struct.pack_into("<II", raw, 0x30, vmpl, 1)  # SIGNATURE_ALGO 1: ECDSA P-384 SHA-384
    struct.pack_into("<QI", raw, 0x40, platform_info, flags)
    for at in (0x38, 0x180, 0x1E0, 0x1F0):  # current, reported, committed, launch
        _put(raw, at, reported_tcb, 8, "TCB")
    _put(raw, 0x50, report_data, 64, "report data")
    _put(raw, 0x90, measurement, 48, "measurement")
    _put(raw, 0xC0, host_data, 32, "host data")
    _put(raw, 0x140, report_id, 32, "report id")
    raw[0x160:0x180] = b"\xff" * 32  # REPORT_ID_MA: no migration agent
    if version >= 3:
        raw[0x188:0x18B] = bytes(cpuid)
    _put(raw, 0x1A0, chip_id, 64, "chip id")
    raw[0x1E8:0x1EB] = raw[0x1EC:0x1EF] = _FIRMWARE  # current and committed version
    der_signature = key.sign(bytes(raw[:SIGNED_SIZE]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der_signature)
    raw[SIGNED_SIZE : SIGNED_SIZE + _COMPONENT] = r.to_bytes(_COMPONENT, "little")
    raw[SIGNED_SIZE + _COMPONENT : SIGNED_SIZE + 2 * _COMPONENT] = s.to_bytes(_COMPONENT, "little")
    return bytes(raw)


def build_cert_table(entries: Sequence[tuple[uuid.UUID, bytes]]) -> bytes:
    """A certificate table: one entry per certificate, the all-zero terminator, the data.

    Offsets count from the start of the table, and the first certificate follows the
    terminator, as AMD's ``cert_table_alloc`` and virtee's ``uapi_to_vec_bytes`` lay it out.
    """
    start = ENTRY_SIZE * (len(entries) + 1)
    table, data = bytearray(), bytearray()
    for guid, cert in entries:
        table += guid.bytes + struct.pack("<II", start + len(data), len(cert))
        data += cert
    return bytes(table) + bytes(ENTRY_SIZE) + bytes(data)

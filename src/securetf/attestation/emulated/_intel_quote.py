"""DCAP quotes in Intel's byte layout, signed as a real quoting enclave signs them.

Layout (Intel SGX ECDSA Quote Library API; see :mod:`securetf.attestation._dcap_layout`):
header (48) || report body || signature data length (u32) || signature data. The quote
signature is made by a fresh attestation key over header || body; the QE report binds that
key (its report data is ``sha256(attestation key || QE auth data) || 32 zero bytes``) and is
signed by the PCK leaf key, whose certificate chain ends the quote. SGX uses quote v3 with
an SGX report body; TDX uses quote v4 with a TD report 1.0 body and wraps the QE part in
certification data of type 6.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from securetf.attestation.emulated._intel_collateral import QE_ATTRIBUTES, QeIdentity, sign_raw
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError

__all__ = ["QuotingPlatform", "SgxReport", "TdReport", "make_quote", "sgx_body", "td_body"]

_ECDSA_P256 = 2
_TEE_SGX, _TEE_TDX = 0x00000000, 0x00000081
_INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_PCK_CHAIN, _QE_REPORT_CERT_DATA = 5, 6
_QE_AUTH_DATA = bytes(range(32))  # what Intel's QE puts there
# SGX ATTRIBUTES: INIT | MODE64BIT, XFRM 0xE7; DEBUG is bit 1 of the first byte.
_SGX_ATTRIBUTES = bytes.fromhex("0500000000000000e700000000000000")
_SGX_DEBUG = 0x02
# TDATTRIBUTES: SEPT_VE_DISABLE (bit 28), as Linux TDs run (dcap-qvl requires it); DEBUG is
# bit 0. XFAM: what a TD on a current Xeon reports.
_TD_ATTRIBUTES = (1 << 28).to_bytes(8, "little")
_TD_DEBUG = 0x01
_XFAM = bytes.fromhex("e702060000000000")
_MR_SEAM = hashlib.sha384(b"securetf emulated TDX module").digest()


def _fixed(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise UsageError(f"{what} is {size} bytes, got {len(value)}")
    return value


@dataclass(frozen=True)
class SgxReport:
    """The fields of an SGX report body (384 bytes) that an enclave's identity is made of."""

    cpu_svn: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    def encode(self) -> bytes:
        return b"".join(
            [
                _fixed(self.cpu_svn, 16, "CPUSVN"),
                struct.pack("<I", 0),  # MISCSELECT
                bytes(28),
                _fixed(self.attributes, 16, "ATTRIBUTES"),
                _fixed(self.mr_enclave, 32, "MRENCLAVE"),
                bytes(32),
                _fixed(self.mr_signer, 32, "MRSIGNER"),
                bytes(96),
                struct.pack("<HH", self.isv_prod_id, self.isv_svn),
                bytes(60),
                _fixed(self.report_data, 64, "report data"),
            ]
        )


@dataclass(frozen=True)
class TdReport:
    """A TD report 1.0 body (584 bytes)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes

    def encode(self) -> bytes:
        return b"".join(
            [
                _fixed(self.tee_tcb_svn, 16, "TEE_TCB_SVN"),
                _fixed(self.mr_seam, 48, "MRSEAM"),
                bytes(48),  # MRSIGNERSEAM: zero for Intel's TDX module
                bytes(8),  # SEAMATTRIBUTES
                _fixed(self.td_attributes, 8, "TDATTRIBUTES"),
                _fixed(self.xfam, 8, "XFAM"),
                _fixed(self.mr_td, 48, "MRTD"),
                _fixed(self.mr_config_id, 48, "MRCONFIGID"),
                _fixed(self.mr_owner, 48, "MROWNER"),
                _fixed(self.mr_owner_config, 48, "MROWNERCONFIG"),
                *(_fixed(rtmr, 48, f"RTMR{i}") for i, rtmr in enumerate(self.rtmrs)),
                _fixed(self.report_data, 64, "report data"),
            ]
        )


@dataclass(frozen=True)
class QuotingPlatform:
    """What signs a quote: the PCK leaf key, its PEM chain, the platform's TCB and its QE."""

    pck_key: EcKey
    pck_chain_pem: bytes
    cpu_svn: bytes
    pce_svn: int
    qe: QeIdentity
    qe_id: bytes  # 16 bytes, in the header's user data


def _attestation_public(key: EcKey) -> bytes:
    numbers = key.raw.public_key().public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def make_quote(body: SgxReport | TdReport, platform: QuotingPlatform) -> bytes:
    """A v3 (SGX) or v4 (TDX) quote of ``body``, signed through ``platform``."""
    tdx = isinstance(body, TdReport)
    header = struct.pack(
        "<HHIHH16s20s",
        4 if tdx else 3,
        _ECDSA_P256,
        _TEE_TDX if tdx else _TEE_SGX,
        platform.qe.isv_svn,
        platform.pce_svn,
        _INTEL_QE_VENDOR_ID,
        _fixed(platform.qe_id, 16, "QE ID") + bytes(4),
    )
    signed = header + body.encode()
    attestation_key = EcKey.generate()
    attestation_public = _attestation_public(attestation_key)
    qe_report = SgxReport(
        cpu_svn=platform.cpu_svn,
        attributes=QE_ATTRIBUTES,
        mr_enclave=platform.qe.mr_enclave,
        mr_signer=platform.qe.mr_signer,
        isv_prod_id=platform.qe.isv_prod_id,
        isv_svn=platform.qe.isv_svn,
        report_data=hashlib.sha256(attestation_public + _QE_AUTH_DATA).digest() + bytes(32),
    ).encode()
    # Intel's quoting enclave ends the PEM chain with a NUL byte.
    chain = platform.pck_chain_pem + b"\0"
    qe_part = b"".join(
        [
            qe_report,
            sign_raw(platform.pck_key, qe_report),
            struct.pack("<H", len(_QE_AUTH_DATA)),
            _QE_AUTH_DATA,
            struct.pack("<HI", _PCK_CHAIN, len(chain)),
            chain,
        ]
    )
    if tdx:
        qe_part = struct.pack("<HI", _QE_REPORT_CERT_DATA, len(qe_part)) + qe_part
    signature_data = sign_raw(attestation_key, signed) + attestation_public + qe_part
    return signed + struct.pack("<I", len(signature_data)) + signature_data


def _with_debug(attributes: bytes, bit: int, debug: bool) -> bytes:
    return bytes([attributes[0] | (bit if debug else 0)]) + attributes[1:]


def sgx_body(
    *,
    cpu_svn: bytes,
    report_data: bytes,
    debug: bool,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    isv_svn: int,
) -> SgxReport:
    """An enclave's report body; ``debug`` sets ATTRIBUTES.DEBUG."""
    if not 0 <= isv_prod_id <= 0xFFFF or not 0 <= isv_svn <= 0xFFFF:
        raise UsageError("ISV product ID and SVN are 16-bit numbers")
    return SgxReport(
        cpu_svn=cpu_svn,
        attributes=_with_debug(_SGX_ATTRIBUTES, _SGX_DEBUG, debug),
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data,
    )


def td_body(
    *,
    tee_tcb_svn: bytes,
    report_data: bytes,
    debug: bool,
    mr_td: bytes,
    rtmrs: tuple[bytes, bytes, bytes, bytes],
    mr_config_id: bytes,
    mr_owner: bytes,
) -> TdReport:
    """A TD's report body; ``debug`` sets TDATTRIBUTES.DEBUG."""
    return TdReport(
        tee_tcb_svn=tee_tcb_svn,
        mr_seam=_MR_SEAM,
        td_attributes=_with_debug(_TD_ATTRIBUTES, _TD_DEBUG, debug),
        xfam=_XFAM,
        mr_td=mr_td,
        mr_config_id=mr_config_id,
        mr_owner=mr_owner,
        mr_owner_config=bytes(48),
        rtmrs=rtmrs,
        report_data=report_data,
    )

"""Strict layout check of an Intel DCAP quote (v3, v4, v5), before dcap-qvl sees it.

dcap-qvl verifies the signatures and the collateral, but it tolerates bytes that no
signature covers: the sizes around the certification data, the PEM armour of the PCK
chain, and the chain's root certificate (it uses its own root). This module makes every
byte count: each declared size must end exactly where the quote ends (only zero padding
may follow), the chain must be canonical PEM, and its last certificate must be the
trusted root: the bundled Intel SGX Root CA, or the root the caller names (the test root of
emulated hardware, :mod:`securetf.attestation.emulated.intel`).

Layout (Intel SGX ECDSA Quote Library API, "Quote Format")::

    header (48): version u16, attestation key type u16 (2 = ECDSA P-256), TEE type u32
    v3/v4 body: SGX report (384) or TD report 1.0 (584); v5: type u16, size u32, body
    signature data length u32, then signature data:
      v3:     ISV signature 64, attestation key 64, QE report 384, QE signature 64,
              QE auth data (u16 size + data), certification data (type u16 = 5, size u32)
      v4/v5:  ISV signature 64, attestation key 64, certification data (type 6, size u32)
              holding: QE report 384, QE signature 64, QE auth data, certification data
              (type 5 = PCK certificate chain, PEM)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from importlib.resources import files

from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError

__all__ = ["INTEL_ROOT", "QuoteLayout", "check_quote_layout"]

TEE_SGX = 0x00000000
TEE_TDX = 0x00000081
_HEADER = 48
_SGX_BODY = 384
_TD10_BODY = 584
_ECDSA_P256 = 2
_PCK_CHAIN = 5
_QE_REPORT_CERT_DATA = 6
# A quote is a few kilobytes; refuse anything far beyond before parsing it.
MAX_QUOTE_SIZE = 64 * 1024

INTEL_ROOT = Certificate.load(
    files("securetf.attestation").joinpath("intel/intel-sgx-root-ca.der").read_bytes(),
    what="bundled Intel SGX Root CA",
)


@dataclass(frozen=True)
class QuoteLayout:
    version: int
    tee_type: int
    body_offset: int
    body_size: int
    pck_chain_pem: bytes
    pck_chain: tuple[Certificate, ...]


class _Reader:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise AttestationError(f"quote truncated: {what} runs past the end of its field")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def sized(self, size: int, what: str, *, zero_padding: bool = False) -> _Reader:
        """A reader over the next ``size`` bytes, which must be all that is left.

        With ``zero_padding``, zero bytes may follow (quote buffers are often padded).
        """
        rest = self.data[self.pos + size : self.end] if self.pos + size < self.end else b""
        if zero_padding and not any(rest):
            self.end -= len(rest)
        if self.pos + size != self.end:
            raise AttestationError(
                f"quote malformed: {what} declares {size} bytes but {self.end - self.pos} remain"
            )
        inner = _Reader(self.data, self.pos, self.pos + size)
        self.pos = self.end
        return inner


def _certification_data(r: _Reader, expected_type: int) -> _Reader:
    cert_type = r.u16("certification data type")
    if cert_type != expected_type:
        raise AttestationError(
            f"quote carries certification data of type {cert_type}, expected {expected_type} "
            "(securetf needs the PCK certificate chain embedded in the quote)"
        )
    return r.sized(r.u32("certification data size"), "certification data")


def _qe_part(r: _Reader) -> _Reader:
    r.take(384 + 64, "QE report and signature")
    r.take(r.u16("QE auth data size"), "QE auth data")
    return _certification_data(r, _PCK_CHAIN)


def check_quote_layout(raw: bytes, *, root: Certificate | None = None) -> QuoteLayout:
    """Return the layout of ``raw``, or raise :class:`AttestationError` if any byte is off.

    The PCK chain must end in ``root`` (default: the bundled Intel SGX Root CA).
    """
    trusted = INTEL_ROOT if root is None else root
    if len(raw) > MAX_QUOTE_SIZE:
        raise AttestationError(f"quote is {len(raw)} bytes, more than {MAX_QUOTE_SIZE} allowed")
    r = _Reader(raw, 0, len(raw))
    version = r.u16("header")
    key_type = r.u16("header")
    tee_type = r.u32("header")
    r.take(_HEADER - 8, "header")
    if key_type != _ECDSA_P256:
        raise AttestationError(f"quote attestation key type {key_type} is not ECDSA P-256")
    if version in (3, 4):
        if tee_type not in (TEE_SGX, TEE_TDX) or (version == 3 and tee_type != TEE_SGX):
            raise AttestationError(f"quote v{version} with unknown TEE type {tee_type:#x}")
        body_size = _SGX_BODY if tee_type == TEE_SGX else _TD10_BODY
    elif version == 5:
        r.u16("body type")
        body_size = r.u32("body size")
    else:
        raise AttestationError(f"quote version {version} is not supported (3, 4 or 5)")
    body_offset = r.pos
    r.take(body_size, "report body")
    sig = r.sized(r.u32("signature data size"), "signature data", zero_padding=True)
    sig.take(64 + 64, "quote signature and attestation key")
    if version == 3:
        chain_data = _qe_part(sig)
    else:
        chain_data = _qe_part(_certification_data(sig, _QE_REPORT_CERT_DATA))
    pem = chain_data.take(chain_data.end - chain_data.pos, "PCK certificate chain")
    try:
        chain = Certificate.load_pem_chain(pem, what="the quote's PCK certificate chain")
    except UsageError as exc:
        raise AttestationError(f"quote malformed: {exc}") from None
    if chain[-1] != trusted:
        name = "the Intel SGX Root CA" if trusted == INTEL_ROOT else f"{trusted.subject_cn!r}"
        raise AttestationError(f"the quote's PCK certificate chain does not end in {name}")
    return QuoteLayout(version, tee_type, body_offset, body_size, pem, tuple(chain))

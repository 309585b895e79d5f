"""Emulated AMD SEV-SNP hardware: one chip, a test AMD PKI, and the reports the chip signs.

The evidence is byte-for-byte what real hardware and AMD's KDS produce, so it goes through
the production verifier unchanged: ``verify_snp(report, vcek, now=..., roots=pki.roots())``.
Only the trust anchors differ, and the production roots (``roots=None``) refuse it.

Like the PSP, which derives the VCEK from a chip secret and the TCB it reports, every TCB
has its own VCEK key, derived from the chip's secret: a report signed at one TCB verifies
only with the VCEK of that TCB, and separate processes sharing a saved PKI derive the same
keys. Certificate validity follows AMD's: the ARK and ASK outlive the VCEK, so evidence
checked after ``days`` fails on the VCEK, as it would on real hardware.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securetf._logutil import warn_loudly
from securetf.attestation._amd_roots import PRODUCTS, AmdRoots
from securetf.attestation.emulated._amd_files import PkiFiles, read_pki, write_pki
from securetf.attestation.emulated._amd_report import (
    CPUIDS,
    DEFAULT_POLICY,
    TCB_PARTS,
    build_cert_table,
    encode_tcb,
    sign_report,
)
from securetf.attestation.emulated._amd_x509 import der, make_ark, make_ask, make_crl, make_vcek
from securetf.attestation.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID
from securetf.attestation.snp_report import POLICY_DEBUG
from securetf.crypto import Certificate
from securetf.errors import AuthenticationError, UsageError

__all__ = ["DEFAULT_POLICY", "DEFAULT_TCB", "EMULATED_MEASUREMENT", "AmdTestPki"]

logger = logging.getLogger(__name__)

#: A plausible reported TCB of each product (Milan's is the real report's in the tests).
DEFAULT_TCB: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "Milan": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        "Genoa": {"bootloader": 9, "tee": 0, "snp": 23, "microcode": 72},
        "Turin": {"fmc": 1, "bootloader": 1, "tee": 1, "snp": 1, "microcode": 1},
    }
)
#: The launch measurement an emulated guest reports unless told otherwise.
EMULATED_MEASUREMENT = hashlib.sha384(b"securetf emulated SEV-SNP guest").digest()
_DAY = 86400
_ROOT_DAYS = 25 * 365  # AMD's ARKs and ASKs are valid for 25 years
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _check_tcb(product: str, tcb: Mapping[str, int], base: Mapping[str, int]) -> dict[str, int]:
    """``tcb`` over ``base``, every part one of ``product``'s and a byte."""
    unknown = sorted(set(tcb) - set(TCB_PARTS[product]))
    if unknown:
        raise UsageError(
            f"{product}'s TCB has no part {', '.join(unknown)}; use {', '.join(TCB_PARTS[product])}"
        )
    merged = {part: int(tcb.get(part, base.get(part, 0))) for part in TCB_PARTS[product]}
    for part, value in merged.items():
        if not 0 <= value <= 0xFF:
            raise UsageError(f"TCB part {part}={value} is not a byte (0 to 255)")
    return merged


def _check_chip_id(product: str, chip_id: bytes) -> bytes:
    if len(chip_id) != 64 or not any(chip_id):
        raise UsageError("a chip id is 64 bytes, not all zero (zero means a masked id)")
    if product == "Turin" and any(chip_id[8:]):
        raise UsageError("a Turin chip id is 8 bytes followed by 56 zero bytes")
    return bytes(chip_id)


class AmdTestPki:
    """A test ARK and ASK for one product, and one chip (its id, TCB and VCEKs).

    Make one with :meth:`generate` or :meth:`load`. ``now`` and ``days`` bound the VCEKs'
    validity (``now`` - 1 day to ``now`` + ``days``) and the CRL's next update.
    """

    def __init__(
        self,
        *,
        product: str,
        chip_id: bytes,
        tcb: Mapping[str, int],
        now: int,
        days: int,
        ark_key: rsa.RSAPrivateKey,
        ask_key: rsa.RSAPrivateKey,
        ark: x509.Certificate,
        ask: x509.Certificate,
        crl: bytes,
        chip_secret: bytes,
    ) -> None:
        if set(tcb) != set(TCB_PARTS[product]):
            raise UsageError(f"a {product} TCB has exactly {', '.join(TCB_PARTS[product])}")
        self.product, self.chip_id, self.now, self.days = product, chip_id, now, days
        self.tcb: Mapping[str, int] = MappingProxyType(_check_tcb(product, tcb, {}))
        self._ark_key, self._ask_key, self._ark, self._ask = ark_key, ask_key, ark, ask
        self._crl, self._chip_secret = crl, chip_secret
        self._vceks: dict[tuple[int, ...], bytes] = {}
        self._lock = threading.Lock()
        self._report_id = hashlib.sha256(b"report-id" + chip_secret).digest()

    def __repr__(self) -> str:
        return f"AmdTestPki(product={self.product!r}, hwid={self.hwid.hex()[:16]}...)"

    @classmethod
    def generate(
        cls,
        *,
        now: int,
        days: int = 30,
        product: str = "Milan",
        chip_id: bytes | None = None,
        tcb: Mapping[str, int] | None = None,
    ) -> AmdTestPki:
        """A new ARK (RSA-4096), ASK (RSA-4096) and chip, with VCEKs valid for ``days``."""
        if product not in PRODUCTS:
            raise UsageError(f"unknown SEV-SNP product {product!r}; use {', '.join(PRODUCTS)}")
        if days < 1:
            raise UsageError(f"the test PKI must be valid for at least one day, not {days}")
        if chip_id is None:
            size = 8 if product == "Turin" else 64
            chip_id = secrets.token_bytes(size).ljust(64, b"\0")
        # Refuse impossible hardware before spending a second on RSA keys.
        chip_id = _check_chip_id(product, chip_id)
        full_tcb = _check_tcb(product, tcb or {}, DEFAULT_TCB[product])
        ark_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
        ask_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
        start, root_end = now - _DAY, now + (days + _ROOT_DAYS) * _DAY
        ark = make_ark(ark_key, product, not_before=start, not_after=root_end)
        ask = make_ask(ark_key, ark, ask_key, product, not_before=start, not_after=root_end)
        warn_loudly(logger, "emulated AMD SEV-SNP %s: a TEST-ONLY PKI, not AMD's", product)
        return cls(
            product=product,
            chip_id=chip_id,
            tcb=full_tcb,
            now=now,
            days=days,
            ark_key=ark_key,
            ask_key=ask_key,
            ark=ark,
            ask=ask,
            crl=make_crl(ark_key, ark, this_update=start, next_update=now + days * _DAY),
            chip_secret=secrets.token_bytes(48),
        )

    @property
    def hwid(self) -> bytes:
        """The chip id as AMD's KDS and the VCEK name it (the first 8 bytes on Turin)."""
        return self.chip_id[:8] if self.product == "Turin" else self.chip_id

    def roots(self) -> dict[str, AmdRoots]:
        """The trust anchors for ``verify_snp(..., roots=...)``."""
        return {self.product: AmdRoots(ark=Certificate(self._ark), ask=Certificate(self._ask))}

    def cert_chain_pem(self) -> bytes:
        """ASK then ARK, PEM: what KDS's ``/vcek/v1/{product}/cert_chain`` returns."""
        encoding = serialization.Encoding.PEM
        return self._ask.public_bytes(encoding) + self._ark.public_bytes(encoding)

    def crl_der(self) -> bytes:
        """The ARK's CRL, DER: what KDS's ``/vcek/v1/{product}/crl`` returns."""
        return self._crl

    def _tcb_key(self, tcb: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(tcb[part] for part in TCB_PARTS[self.product])

    def _vcek_key(self, tcb: Mapping[str, int]) -> ec.EllipticCurvePrivateKey:
        """The chip's key at ``tcb``: HKDF of the chip secret and the TCB, as a P-384 scalar."""
        okm = HKDF(
            algorithm=hashes.SHA384(), length=64, salt=None, info=b"securetf emulated VCEK"
        ).derive(self._chip_secret + encode_tcb(self.product, tcb))
        scalar = int.from_bytes(okm, "big") % (_P384_ORDER - 1) + 1
        return ec.derive_private_key(scalar, ec.SECP384R1())

    def vcek_der(self, tcb: Mapping[str, int] | None = None) -> bytes:
        """The chip's VCEK (DER) at ``tcb`` (parts not given: the chip's), signed by the ASK.

        The same TCB gives the same certificate for the life of this object.
        """
        full = _check_tcb(self.product, tcb or {}, self.tcb)
        with self._lock:
            cached = self._vceks.get(self._tcb_key(full))
            if cached is None:
                cached = make_vcek(
                    self._ask_key,
                    self._ask,
                    self._vcek_key(full).public_key(),
                    product=self.product,
                    hwid=self.hwid,
                    tcb=full,
                    not_before=self.now - _DAY,
                    not_after=self.now + self.days * _DAY,
                )
                self._vceks[self._tcb_key(full)] = cached
        return cached

    def report(
        self,
        report_data: bytes,
        *,
        measurement: bytes = EMULATED_MEASUREMENT,
        host_data: bytes = bytes(32),
        policy: int = DEFAULT_POLICY,
        vmpl: int = 0,
        reported_tcb: Mapping[str, int] | None = None,
        debug: bool = False,
        version: int = 3,
        guest_svn: int = 0,
        mask_chip_id: bool = False,
    ) -> bytes:
        """A 1184-byte attestation report binding ``report_data``, signed by the VCEK.

        ``debug`` sets the policy's DEBUG bit (19); ``reported_tcb`` parts not given are
        the chip's; ``mask_chip_id`` zeroes the chip id and sets MASK_CHIP_ID, as a host
        configured to hide it does.
        """
        if not 0 <= vmpl <= 3:
            raise UsageError(f"VMPL is 0 to 3, not {vmpl}")
        if not 0 <= policy < 1 << 64:
            raise UsageError(f"the guest policy is a 64-bit value, not {policy}")
        if not 0 <= guest_svn < 1 << 32:
            raise UsageError(f"the guest SVN is a 32-bit value, not {guest_svn}")
        tcb = _check_tcb(self.product, reported_tcb or {}, self.tcb)
        return sign_report(
            self._vcek_key(tcb),
            chip_id=bytes(64) if mask_chip_id else self.chip_id,
            reported_tcb=encode_tcb(self.product, tcb),
            report_data=report_data,
            measurement=measurement,
            version=version,
            policy=policy | (POLICY_DEBUG if debug else 0),
            vmpl=vmpl,
            cpuid=CPUIDS[self.product],
            flags=0b10 if mask_chip_id else 0,
            host_data=host_data,
            guest_svn=guest_svn,
            report_id=self._report_id,
        )

    def cert_table(self, tcb: Mapping[str, int] | None = None) -> bytes:
        """The certificate table (VCEK at ``tcb``, ASK, ARK; DER) a host attaches."""
        return build_cert_table(
            [
                (VCEK_GUID, self.vcek_der(tcb)),
                (ASK_GUID, der(self._ask)),
                (ARK_GUID, der(self._ark)),
            ]
        )

    def save(self, directory: Path | str) -> None:
        """Write the PKI to ``directory`` (created 0700); private keys are 0600."""
        write_pki(Path(directory), self._files(vcek=self.vcek_der()))

    def _files(self, vcek: bytes) -> PkiFiles:
        return PkiFiles(
            product=self.product,
            chip_id=self.chip_id,
            tcb=self.tcb,
            now=self.now,
            days=self.days,
            ark_key=self._ark_key,
            ask_key=self._ask_key,
            ark=self._ark,
            ask=self._ask,
            vcek=vcek,
            crl=self._crl,
            chip_secret=self._chip_secret,
        )

    @classmethod
    def load(cls, directory: Path | str) -> AmdTestPki:
        """The PKI :meth:`save` wrote to ``directory``; :class:`UsageError` if it is not one."""
        files = read_pki(Path(directory))
        if files.product not in PRODUCTS:
            raise UsageError(f"{directory}/pki.json names an unknown product {files.product!r}")
        pki = cls(
            product=files.product,
            chip_id=_check_chip_id(files.product, files.chip_id),
            tcb=files.tcb,
            now=files.now,
            days=files.days,
            ark_key=files.ark_key,
            ask_key=files.ask_key,
            ark=files.ark,
            ask=files.ask,
            crl=files.crl,
            chip_secret=files.chip_secret,
        )
        # The saved VCEK is the ASK's, for the key this chip secret gives at this TCB.
        saved = Certificate.load(files.vcek, what=f"{directory}/vcek.der")
        key = (
            pki._vcek_key(pki.tcb)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        try:
            saved.verify_signed_by(Certificate(files.ask))
        except AuthenticationError as exc:
            raise UsageError(f"{directory}/vcek.der is not issued by ask.pem: {exc}") from None
        if saved.public_key_der() != key:
            raise UsageError(f"{directory}/vcek.der is not the VCEK of this chip secret")
        pki._vceks[pki._tcb_key(pki.tcb)] = files.vcek
        warn_loudly(logger, "emulated AMD SEV-SNP %s: a TEST-ONLY PKI, not AMD's", files.product)
        return pki

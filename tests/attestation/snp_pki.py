"""Building blocks of the emulated AMD hardware, used to break its coherence on purpose.

:class:`securetf.attestation.emulated.amd.AmdTestPki` is a consistent chip. The verifier's
negative tests need what it never makes: a report signed by any key, a VCEK certifying any
key for any chip id, a product AMD does not have, fast (RSA-2048) roots. These wrap the
same certificate and report builders, so both kinds of test exercise one layout.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from securetf.attestation import AmdRoots
from securetf.attestation.emulated import _amd_x509
from securetf.attestation.emulated._amd_report import encode_tcb, sign_report
from securetf.crypto import Certificate

START = int(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).timestamp())
END = int(datetime.datetime(2034, 1, 1, tzinfo=datetime.UTC).timestamp())
INSIDE = int(datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC).timestamp())


def cert_builder(
    subject: str, issuer: str, public_key: CertificatePublicKeyTypes
) -> x509.CertificateBuilder:
    """An unsigned certificate between test names, valid 2024 to 2034."""
    return _amd_x509.cert_builder(subject, issuer, public_key, not_before=START, not_after=END)


@dataclass
class FakeAmdPki:
    """ARK and ASK of any product name, with RSA-2048 keys (fast); VCEKs for any key."""

    product: str
    ark_key: rsa.RSAPrivateKey
    ask_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate

    @classmethod
    def make(cls, product: str = "Milan") -> FakeAmdPki:
        ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ask_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ark = _amd_x509.make_ark(ark_key, product, not_before=START, not_after=END)
        ask = _amd_x509.make_ask(ark_key, ark, ask_key, product, not_before=START, not_after=END)
        return cls(product, ark_key, ask_key, ark, ask)

    def roots(self) -> dict[str, AmdRoots]:
        return {self.product: AmdRoots(ark=Certificate(self.ark), ask=Certificate(self.ask))}

    def vcek(self, key: ec.EllipticCurvePrivateKey, *, hwid: bytes, spl: dict[str, int]) -> bytes:
        """A VCEK for ``key``, certifying chip ``hwid`` at TCB ``spl``, signed by the ASK."""
        return _amd_x509.make_vcek(
            self.ask_key,
            self.ask,
            key.public_key(),
            product=self.product,
            hwid=hwid,
            tcb=spl,
            not_before=START,
            not_after=END,
        )


def tcb_bytes(product: str, spl: dict[str, int]) -> bytes:
    return encode_tcb(product, spl)


def make_report(
    key: ec.EllipticCurvePrivateKey,
    *,
    chip_id: bytes,
    tcb: bytes,
    version: int = 2,
    policy: int = 0x30000,
    cpuid: tuple[int, int, int] = (0, 0, 0),
    flags: int = 0,
    report_data: bytes = b"\x11" * 64,
    measurement: bytes = b"\x22" * 48,
) -> bytes:
    """A well-formed SNP report signed by ``key`` (little-endian r and s, as the PSP does)."""
    return sign_report(
        key,
        chip_id=chip_id,
        reported_tcb=tcb,
        report_data=report_data,
        measurement=measurement,
        version=version,
        policy=policy,
        cpuid=cpuid,
        flags=flags,
        guest_svn=1,
    )

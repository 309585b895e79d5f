"""A test AMD PKI (ARK, ASK, VCEKs) and synthetic SEV-SNP reports signed by its VCEKs.

Real reports cannot be made here; these show the checks that need a chip we control: a
report of chip A against chip B's VCEK, TCB mismatches, the Turin TCB layout.
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from securetf.attestation import AmdRoots
from securetf.crypto import Certificate

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD_OID = "1.3.6.1.4.1.3704.1."
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
END = datetime.datetime(2034, 1, 1, tzinfo=datetime.UTC)
INSIDE = int(datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC).timestamp())


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def cert_builder(subject: str, issuer: str, public_key: object) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(END)
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class FakeAmdPki:
    product: str
    ark_key: rsa.RSAPrivateKey
    ask_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate

    @classmethod
    def make(cls, product: str = "Milan") -> FakeAmdPki:
        ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ask_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ark_cn, ask_cn = f"ARK-{product}", f"SEV-{product}"
        ark = cert_builder(ark_cn, ark_cn, ark_key.public_key()).sign(
            ark_key, hashes.SHA384(), rsa_padding=PSS
        )
        ask = cert_builder(ask_cn, ark_cn, ask_key.public_key()).sign(
            ark_key, hashes.SHA384(), rsa_padding=PSS
        )
        return cls(product, ark_key, ask_key, ark, ask)

    def roots(self) -> dict[str, AmdRoots]:
        return {
            self.product: AmdRoots(
                ark=Certificate.load(der(self.ark)), ask=Certificate.load(der(self.ask))
            )
        }

    def vcek(self, key: ec.EllipticCurvePrivateKey, *, hwid: bytes, spl: dict[str, int]) -> bytes:
        """A VCEK for ``key``, certifying chip ``hwid`` at TCB ``spl``, signed by the ASK."""
        oids = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
        builder = cert_builder("SEV-VCEK", f"SEV-{self.product}", key.public_key())
        for part, value in spl.items():
            ext = x509.UnrecognizedExtension(
                x509.ObjectIdentifier(AMD_OID + oids[part]), bytes([0x02, 0x01, value])
            )
            builder = builder.add_extension(ext, critical=False)
        hw = x509.UnrecognizedExtension(x509.ObjectIdentifier(AMD_OID + "4"), hwid)
        builder = builder.add_extension(hw, critical=False)
        return der(builder.sign(self.ask_key, hashes.SHA384(), rsa_padding=PSS))


def tcb_bytes(product: str, spl: dict[str, int]) -> bytes:
    if product == "Turin":
        return bytes(
            [
                spl.get("fmc", 0),
                spl["bootloader"],
                spl["tee"],
                spl["snp"],
                0,
                0,
                0,
                spl["microcode"],
            ]
        )
    return bytes([spl["bootloader"], spl["tee"], 0, 0, 0, 0, spl["snp"], spl["microcode"]])


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
    raw = bytearray(0x4A0)
    struct.pack_into("<IIQ", raw, 0, version, 1, policy)
    struct.pack_into("<II", raw, 0x30, 0, 1)
    raw[0x38:0x40] = tcb
    struct.pack_into("<QI", raw, 0x40, 1, flags)
    raw[0x50:0x90] = report_data
    raw[0x90:0xC0] = measurement
    raw[0x180:0x188] = tcb
    raw[0x188:0x18B] = bytes(cpuid)
    raw[0x1A0:0x1E0] = chip_id
    raw[0x1E0:0x1E8] = tcb
    raw[0x1F0:0x1F8] = tcb
    r, s = decode_dss_signature(key.sign(bytes(raw[:0x2A0]), ec.ECDSA(hashes.SHA384())))
    raw[0x2A0:0x2E8] = r.to_bytes(72, "little")
    raw[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(raw)

"""Certificates of an emulated AMD key hierarchy: ARK, ASK, VCEK, and the ARK's CRL.

They copy the shape of AMD's (VCEK specification #57230 and the certificates KDS serves),
because the verifier checks that shape: every signature RSA-PSS SHA-384 with a 48-byte salt,
the ASK's subject CN ``SEV-<product>`` (how :func:`vcek_product` recognises the product),
a P-384 VCEK carrying AMD's extensions under OID 1.3.6.1.4.1.3704.1:

- ``.1`` struct version (INTEGER 0), ``.2`` product name (IA5String, ``Milan-B0``),
- ``.3.1`` boot loader, ``.3.2`` TEE, ``.3.3`` SNP, ``.3.4``-``.3.7`` (reserved, 0),
  ``.3.8`` microcode, ``.3.9`` FMC (Turin) security patch levels (DER INTEGERs),
- ``.4`` hardware ID: the chip id as raw bytes (64 bytes; the first 8 on Turin).

What differs on purpose is the organization (``securetf emulated AMD (TEST ONLY)``) and
the ARK's CN, so nobody mistakes these certificates for AMD's.

This module uses ``cryptography``'s builders directly: making keys and certificates is what
emulated hardware does, and production code never needs it (:mod:`securetf.crypto` only
checks certificates).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

__all__ = [
    "AMD_OID",
    "PSS",
    "SPL_OIDS",
    "TEST_ORG",
    "amd_name",
    "cert_builder",
    "der",
    "der_integer",
    "make_ark",
    "make_ask",
    "make_crl",
    "make_vcek",
]

#: AMD's signature scheme for ARK, ASK, VCEK and CRL.
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD_OID = "1.3.6.1.4.1.3704.1."
SPL_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_RESERVED_SPL_OIDS = ("3.4", "3.5", "3.6", "3.7")
#: The organization of every emulated certificate: never AMD's name.
TEST_ORG = "securetf emulated AMD (TEST ONLY)"
_PRODUCT_NAMES = {"Milan": "Milan-B0", "Genoa": "Genoa-B0", "Turin": "Turin-B0"}


def amd_name(common_name: str) -> x509.Name:
    """A name in AMD's shape (OU, O, CN) with the test organization."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _when(unix: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)


def cert_builder(
    subject: str | x509.Name,
    issuer: str | x509.Name,
    public_key: CertificatePublicKeyTypes,
    *,
    not_before: int,
    not_after: int,
) -> x509.CertificateBuilder:
    """An unsigned certificate from ``issuer`` to ``subject`` (names, or CNs of test names)."""
    return (
        x509.CertificateBuilder()
        .subject_name(amd_name(subject) if isinstance(subject, str) else subject)
        .issuer_name(amd_name(issuer) if isinstance(issuer, str) else issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_when(not_before))
        .not_valid_after(_when(not_after))
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def der_integer(value: int) -> bytes:
    """A small non-negative DER INTEGER (minimal two's complement, as AMD encodes SPLs)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body


def _ca(builder: x509.CertificateBuilder, path_length: int | None) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def make_ark(
    key: rsa.RSAPrivateKey, product: str, *, not_before: int, not_after: int
) -> x509.Certificate:
    """The self-signed root of ``product`` (CN ``ARK-<product> TEST``)."""
    cn = f"ARK-{product} TEST"
    builder = cert_builder(cn, cn, key.public_key(), not_before=not_before, not_after=not_after)
    return _ca(builder, None).sign(key, hashes.SHA384(), rsa_padding=PSS)


def make_ask(
    ark_key: rsa.RSAPrivateKey,
    ark: x509.Certificate,
    ask_key: rsa.RSAPrivateKey,
    product: str,
    *,
    not_before: int,
    not_after: int,
) -> x509.Certificate:
    """The signing key of ``product`` (CN ``SEV-<product>``), signed by the ARK."""
    builder = cert_builder(
        f"SEV-{product}",
        ark.subject,
        ask_key.public_key(),
        not_before=not_before,
        not_after=not_after,
    )
    return _ca(builder, 0).sign(ark_key, hashes.SHA384(), rsa_padding=PSS)


def make_vcek(
    ask_key: rsa.RSAPrivateKey,
    ask: x509.Certificate,
    public_key: CertificatePublicKeyTypes,
    *,
    product: str,
    hwid: bytes,
    tcb: Mapping[str, int],
    not_before: int,
    not_after: int,
) -> bytes:
    """A VCEK (DER) for ``public_key``, certifying chip ``hwid`` at ``tcb``, by the ASK."""
    builder = cert_builder(
        "SEV-VCEK", ask.subject, public_key, not_before=not_before, not_after=not_after
    )
    name = _PRODUCT_NAMES.get(product, product).encode("ascii")
    extensions = {
        "1": der_integer(0),
        "2": bytes([0x16, len(name)]) + name,  # IA5String
        **{oid: der_integer(0) for oid in _RESERVED_SPL_OIDS},
        **{SPL_OIDS[part]: der_integer(value) for part, value in tcb.items()},
        "4": hwid,
    }
    for oid, value in extensions.items():
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(AMD_OID + oid), value)
        builder = builder.add_extension(ext, critical=False)
    return der(builder.sign(ask_key, hashes.SHA384(), rsa_padding=PSS))


def make_crl(
    ark_key: rsa.RSAPrivateKey, ark: x509.Certificate, *, this_update: int, next_update: int
) -> bytes:
    """The ARK's CRL (DER): it revokes nothing, as AMD's usually does."""
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ark.subject)
        .last_update(_when(this_update))
        .next_update(_when(next_update))
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(ark_key, hashes.SHA384(), rsa_padding=PSS)
    )
    return crl.public_bytes(serialization.Encoding.DER)

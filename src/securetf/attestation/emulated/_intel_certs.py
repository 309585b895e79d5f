"""Certificates and CRLs of the emulated Intel PKI, shaped like Intel's own.

The profile mirrors Intel's (what dcap-qvl's webpki path check expects): ECDSA P-256 with
SHA-256 everywhere, critical BasicConstraints and KeyUsage, key identifiers, no extended
key usage on the leaves, and CRLs (v2, with a CRL number) signed by the issuer of the
certificates they cover. Every name says TEST, so no one mistakes these for Intel's.
This module builds them with ``cryptography`` directly (securetf.crypto issues only the
certificates securetf itself needs): it plays Intel, not securetf.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from securetf.attestation.emulated._intel_pck import SGX_EXTENSION_OID
from securetf.crypto.x509ca import EcKey

__all__ = [
    "PCK_CN",
    "PLATFORM_CA_CN",
    "ROOT_CN",
    "TCB_SIGNING_CN",
    "Issued",
    "Validity",
    "ca_certificate",
    "crl",
    "leaf_certificate",
]

_ORG = "securetf TEST (emulated Intel PKI, not Intel)"
ROOT_CN = "securetf TEST Intel SGX Root CA"
# dcap-qvl picks the PCK CRL to fetch (ca=platform or ca=processor) by looking for Intel's
# CA name inside the issuer name, so the test name contains it.
PLATFORM_CA_CN = "securetf TEST Intel SGX PCK Platform CA"
PCK_CN = "securetf TEST Intel SGX PCK Certificate"
TCB_SIGNING_CN = "securetf TEST Intel SGX TCB Signing"


@dataclass(frozen=True)
class Validity:
    """One validity window for every certificate, CRL and JSON of the PKI (unix seconds)."""

    not_before: int
    not_after: int

    @staticmethod
    def when(unix: int) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    key: EcKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: str,
    public: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: EcKey,
    validity: Validity,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(Validity.when(validity.not_before))
        .not_valid_after(Validity.when(validity.not_after))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.raw.public_key()),
            critical=False,
        )
    )


def ca_certificate(
    key: EcKey,
    common_name: str,
    *,
    issuer: x509.Certificate | None,
    issuer_key: EcKey,
    path_length: int,
    validity: Validity,
) -> x509.Certificate:
    """A CA certificate: self-signed when ``issuer`` is None (the root)."""
    return (
        _builder(common_name, key.raw.public_key(), issuer, issuer_key, validity)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .sign(issuer_key.raw, hashes.SHA256())
    )


def leaf_certificate(
    key: EcKey,
    common_name: str,
    *,
    issuer: x509.Certificate,
    issuer_key: EcKey,
    validity: Validity,
    sgx_extension: bytes | None = None,
) -> x509.Certificate:
    """An end-entity certificate (PCK or TCB signing), with the SGX extension if given."""
    builder = (
        _builder(common_name, key.raw.public_key(), issuer, issuer_key, validity)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sgx_extension is not None:
        oid = x509.ObjectIdentifier(SGX_EXTENSION_OID)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(oid, sgx_extension), critical=False
        )
    return builder.sign(issuer_key.raw, hashes.SHA256())


def crl(issuer: x509.Certificate, issuer_key: EcKey, validity: Validity) -> bytes:
    """An empty CRL of ``issuer`` (DER) over the PKI's window: nothing is revoked, but dcap-qvl
    requires an authoritative CRL for every certificate of every chain."""
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(Validity.when(validity.not_before))
        .next_update(Validity.when(validity.not_after))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.raw.public_key()),
            critical=False,
        )
        .sign(issuer_key.raw, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )

"""Issuing X.509 certificates: a policy's CA, the CAS's own TLS identity, instance certificates.

All keys are ECDSA P-256, all signatures ECDSA-SHA256; certificates are short-lived and
carry exactly the usages asked for.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securetf.crypto._pem import load_private_pem
from securetf.errors import AuthenticationError, UsageError

__all__ = ["EcKey", "issue_certificate", "new_ca", "self_signed", "verify_ec_signature"]


class EcKey:
    """An ECDSA P-256 private key."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> EcKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "key") -> EcKey:
        key = load_private_pem(data, source=source)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise UsageError(f"{source} is not an ECDSA P-256 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: callers keep it in memory or encrypted at rest."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_der(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))

    @property
    def raw(self) -> ec.EllipticCurvePrivateKey:
        return self._key


def verify_ec_signature(public_der: bytes, signature: bytes, message: bytes) -> None:
    """Return if ``signature`` is a P-256 ECDSA-SHA256 signature of ``message``; else raise."""
    try:
        key = serialization.load_der_public_key(public_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AuthenticationError("not a valid public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AuthenticationError("not an ECDSA public key")
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AuthenticationError("signature verification failed") from None


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _alt_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for n in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            general.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(general)


def _when(unix: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)


def _self_signed_base(
    key: EcKey, name: x509.Name, *, now: float, valid_days: int, ca: bool
) -> x509.CertificateBuilder:
    path_length = 0 if ca else None
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.raw.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_when(now - 300))
        .not_valid_after(_when(now + valid_days * 86400))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )


def new_ca(common_name: str, *, now: float, valid_days: int) -> tuple[EcKey, bytes]:
    """A new self-signed CA (path length 0); returns its key and PEM certificate."""
    key = EcKey.generate()
    name = _name(common_name, "securetf policy CA")
    builder = (
        _self_signed_base(key, name, now=now, valid_days=valid_days, ca=True)
        .add_extension(
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.raw.public_key()), critical=False
        )
    )
    cert = builder.sign(key.raw, hashes.SHA256())
    return key, cert.public_bytes(serialization.Encoding.PEM)


def retire_ca(key: EcKey, cert_pem: bytes, *, until: float) -> bytes:
    """The CA certificate ``cert_pem`` (of ``key``) issued again to end at ``until`` (or its
    own end, if earlier): same subject, key and extensions, so the certificates it issued
    still chain to it, and every verifier stops trusting it at ``until``."""
    try:
        old = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise UsageError("cannot retire a CA: malformed CA certificate") from exc
    end = min(old.not_valid_after_utc, _when(until))
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.subject)
        .public_key(key.raw.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(max(end, old.not_valid_before_utc))
    )
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    cert = builder.sign(key.raw, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_certificate(
    ca_key: EcKey,
    ca_cert_pem: bytes,
    subject_public_der: bytes,
    *,
    common_name: str,
    organization: str | None = None,
    alt_names: Sequence[str] = (),
    server: bool,
    client: bool,
    serial: int,
    now: float,
    valid_seconds: float,
) -> bytes:
    """A leaf certificate for ``subject_public_der`` signed by the CA; PEM."""
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        public = serialization.load_der_public_key(subject_public_der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError("cannot issue a certificate: malformed CA certificate or key") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise UsageError("certificates are issued only for ECDSA P-256 keys")
    usages = [
        u
        for u, on in (
            (ExtendedKeyUsageOID.SERVER_AUTH, server),
            (ExtendedKeyUsageOID.CLIENT_AUTH, client),
        )
        if on
    ]
    if not usages:
        raise UsageError("a certificate needs the server or the client usage")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(_when(now - 300))
        .not_valid_after(_when(now + valid_seconds))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.raw.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(_alt_names(alt_names), critical=False)
    return builder.sign(ca_key.raw, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def self_signed(
    key: EcKey,
    common_name: str,
    alt_names: Sequence[str],
    *,
    now: float,
    valid_days: int,
    extensions: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """A self-signed server certificate (the CAS's own identity, pinned by its clients);
    ``extensions``: more non-critical extensions, (dotted OID, raw value)."""
    name = _name(common_name, "securetf CAS")
    builder = (
        _self_signed_base(key, name, now=now, valid_days=valid_days, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_alt_names(alt_names), critical=False)
    )
    for oid, value in extensions:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    cert = builder.sign(key.raw, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)

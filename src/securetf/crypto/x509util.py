"""X.509 certificates for attestation chains: parse, read fields, check who signed them.

Only the pieces the verifiers need: no path building, no name constraints. Callers decide
which issuer a certificate must have and which signature scheme it must use; this module
checks that the signature is really made by that issuer's key.
"""

from __future__ import annotations

import warnings
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from securetf.errors import AuthenticationError, UsageError

__all__ = ["Certificate"]

_PEM_END = b"-----END CERTIFICATE-----\n"
#: OpenSSL's long names, as ``getpeercert()`` spells them.
_LONG_NAMES = {NameOID.COMMON_NAME: "commonName", NameOID.ORGANIZATION_NAME: "organizationName"}


def _utf8(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


class Certificate:
    """One parsed X.509 certificate; ``der`` holds the exact bytes it was parsed from."""

    __slots__ = ("_cert", "der")

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert
        self.der = cert.public_bytes(serialization.Encoding.DER)

    @classmethod
    def load(cls, data: bytes, *, what: str = "certificate") -> Certificate:
        """Parse one certificate, DER or PEM; anything else is a :class:`UsageError`."""
        try:
            # AMD's VCEKs have serial number 0, which cryptography warns about.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if data.lstrip().startswith(b"-----BEGIN"):
                    cert = x509.load_pem_x509_certificate(data)
                else:
                    cert = x509.load_der_x509_certificate(data)
        except (ValueError, TypeError, x509.InvalidVersion) as exc:
            raise UsageError(f"{what} is not a DER or PEM X.509 certificate") from exc
        return cls(cert)

    @classmethod
    def load_pem_chain(cls, data: bytes, *, what: str = "certificate chain") -> list[Certificate]:
        """Parse concatenated PEM certificates, accepting only the canonical encoding.

        Canonical means: every block is exactly what re-encoding its certificate gives
        (64-character lines, ``\\n`` endings), blocks follow each other with nothing between
        them, and at most one NUL byte ends the data (Intel's quoting enclaves add one). So
        no byte of ``data`` can change without changing a certificate.
        """
        body = data[:-1] if data.endswith(b"\0") else data
        certs: list[Certificate] = []
        pos = 0
        while pos < len(body):
            end = body.find(_PEM_END, pos)
            if end < 0:
                raise UsageError(f"{what} has bytes that are not a PEM certificate")
            block = body[pos : end + len(_PEM_END)]
            cert = cls.load(block, what=what)
            if cert.pem() != block:
                raise UsageError(f"{what} is not canonically PEM-encoded")
            certs.append(cert)
            pos += len(block)
        if not certs:
            raise UsageError(f"{what} holds no certificate")
        return certs

    def pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def peer_form(self) -> dict[str, tuple[tuple[Any, ...], ...]]:
        """Subject and DNS names in the form of Python's ``SSLSocket.getpeercert()``.

        For certificates a TLS library has already verified, read by code written against
        that form (the network shield's identity check). Attributes other than the common
        name and organization keep their dotted OID, so they never pass for either.
        """
        subject = tuple(
            tuple((_LONG_NAMES.get(a.oid, a.oid.dotted_string), _utf8(a.value)) for a in rdn)
            for rdn in self._cert.subject.rdns
        )
        try:
            san = self._cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            dns = tuple(("DNS", name) for name in san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            dns = ()
        except (ValueError, x509.DuplicateExtension) as exc:
            raise UsageError(f"certificate {self.subject_cn!r} has malformed extensions") from exc
        return {"subject": subject, "subjectAltName": dns}

    @property
    def subject_cn(self) -> str:
        attrs = self._cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return _utf8(attrs[0].value) if attrs else ""

    @property
    def issuer_cn(self) -> str:
        attrs = self._cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        return _utf8(attrs[0].value) if attrs else ""

    @property
    def not_before(self) -> int:
        """Start of validity, unix seconds."""
        return int(self._cert.not_valid_before_utc.timestamp())

    @property
    def not_after(self) -> int:
        """End of validity, unix seconds."""
        return int(self._cert.not_valid_after_utc.timestamp())

    def valid_at(self, now: int) -> bool:
        return self.not_before <= now <= self.not_after

    def extension_value(self, oid: str) -> bytes | None:
        """The raw ``extnValue`` bytes of the extension ``oid`` (dotted), or None."""
        try:
            extensions = list(self._cert.extensions)
        except (ValueError, x509.DuplicateExtension) as exc:
            raise UsageError(f"certificate {self.subject_cn!r} has malformed extensions") from exc
        for ext in extensions:
            if ext.oid.dotted_string == oid:
                value = ext.value
                raw: bytes = (
                    value.value
                    if isinstance(value, x509.UnrecognizedExtension)
                    else value.public_bytes()
                )
                return raw
        return None

    def signature_scheme(self) -> str:
        """The scheme of this certificate's signature, e.g. ``rsa-pss-sha384/48``."""
        oid = self._cert.signature_algorithm_oid.dotted_string
        try:
            digest = self._cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            return f"unsupported:{oid}"
        name = digest.name if digest is not None else "none"
        params = self._cert.signature_algorithm_parameters
        if isinstance(params, padding.PSS):
            # The salt length is only exposed on the private attribute.
            salt = getattr(params, "_salt_length", "?")
            return f"rsa-pss-{name}/{salt}"
        if isinstance(params, padding.PKCS1v15):
            return f"rsa-pkcs1-{name}"
        if isinstance(params, ec.ECDSA):
            return f"ecdsa-{name}"
        return f"other:{oid}"

    def _public_key(self) -> PublicKeyTypes:
        try:
            return self._cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"certificate {self.subject_cn!r} has an unusable key") from exc

    def public_key_kind(self) -> str:
        """``rsa-<bits>``, ``ec-<curve>`` or ``other``."""
        key = self._public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return f"rsa-{key.key_size}"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ec-{key.curve.name}"
        return "other"

    def public_key_der(self) -> bytes:
        """The SubjectPublicKeyInfo, DER."""
        return self._public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify_signed_by(self, issuer: Certificate) -> None:
        """Return if ``issuer``'s key made this certificate's signature; raise otherwise.

        The issuer name must match too. Raises :class:`AuthenticationError`.
        """
        if self._cert.issuer != issuer._cert.subject:
            raise AuthenticationError(
                f"certificate {self.subject_cn!r} names issuer {self.issuer_cn!r}, "
                f"not {issuer.subject_cn!r}"
            )
        try:
            self._cert.verify_directly_issued_by(issuer._cert)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            raise AuthenticationError(
                f"certificate {self.subject_cn!r} is not signed by {issuer.subject_cn!r}"
            ) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and self.der == other.der

    def __hash__(self) -> int:
        return hash(self.der)

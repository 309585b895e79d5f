"""ECDSA P-384 with SHA-384 over raw (r, s) integers, as AMD SEV-SNP reports carry them."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from securetf.errors import AuthenticationError, UsageError

__all__ = ["P384_ORDER", "verify_ecdsa_p384_sha384"]

# The order n of the P-384 group (FIPS 186-4, D.1.2.4): r and s must lie in [1, n-1].
P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
    "581a0db248b0a77aecec196accc52973",
    16,
)


def verify_ecdsa_p384_sha384(public_key_der: bytes, r: int, s: int, message: bytes) -> None:
    """Return if (r, s) signs SHA-384(``message``) under the P-384 key; raise otherwise.

    ``public_key_der`` is a SubjectPublicKeyInfo. A key of another type is a
    :class:`UsageError`; a bad signature is an :class:`AuthenticationError`.
    """
    try:
        key = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError("not a valid public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise UsageError("the key is not an ECDSA P-384 key")
    if not (0 < r < P384_ORDER and 0 < s < P384_ORDER):
        raise AuthenticationError("ECDSA signature values out of range")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AuthenticationError("ECDSA P-384 signature verification failed") from None

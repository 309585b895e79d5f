"""The only package that calls ``cryptography``'s primitives.

Safe helpers live here; the raw AEAD with caller-chosen nonces is in :mod:`.hazmat_aead`,
whose name says what it is.
"""

from securetf.crypto._hash import constant_time_equal, hkdf_sha256, random_bytes, sha256
from securetf.crypto.ecdsa import verify_ecdsa_p384_sha384
from securetf.crypto.hazmat_aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, AesGcm
from securetf.crypto.signing import SigningKey, VerifyKey
from securetf.crypto.x509util import Certificate

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "AesGcm",
    "Certificate",
    "SigningKey",
    "VerifyKey",
    "constant_time_equal",
    "hkdf_sha256",
    "random_bytes",
    "sha256",
    "verify_ecdsa_p384_sha384",
]

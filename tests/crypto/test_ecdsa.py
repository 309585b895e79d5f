"""ECDSA P-384 over raw (r, s): a known-good signature, and every way it can be wrong."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from securetf.crypto import verify_ecdsa_p384_sha384
from securetf.crypto.ecdsa import P384_ORDER
from securetf.errors import AuthenticationError, UsageError

KEY = ec.generate_private_key(ec.SECP384R1())
SPKI = KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
R, S = decode_dss_signature(KEY.sign(b"message", ec.ECDSA(hashes.SHA384())))


def test_valid_signature() -> None:
    verify_ecdsa_p384_sha384(SPKI, R, S, b"message")


@pytest.mark.parametrize(
    ("r", "s", "msg"),
    [(R, S, b"other"), (R + 1, S, b"message"), (0, S, b"message"), (R, P384_ORDER, b"message")],
    ids=["other message", "r + 1", "r = 0", "s = order"],  # R, S are random: stable ids
)
def test_bad_signatures(r: int, s: int, msg: bytes) -> None:
    with pytest.raises(AuthenticationError):
        verify_ecdsa_p384_sha384(SPKI, r, s, msg)


def test_wrong_key_types() -> None:
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(UsageError, match="not an ECDSA P-384"):
        verify_ecdsa_p384_sha384(p256, R, S, b"message")
    with pytest.raises(UsageError):
        verify_ecdsa_p384_sha384(b"junk", R, S, b"message")

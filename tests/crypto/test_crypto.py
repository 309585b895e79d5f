from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.crypto import AesGcm, SigningKey, VerifyKey, hkdf_sha256
from securetf.errors import AuthenticationError, IntegrityError, UsageError

KEY = bytes(range(32))
NONCE = bytes(12)


def test_hkdf_rfc5869_case_1() -> None:
    # RFC 5869, Appendix A.1
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_aes_gcm_known_answer() -> None:
    # NIST GCM test case 13 (AES-256, zero key, empty plaintext).
    assert AesGcm(bytes(32)).seal(bytes(12), b"", b"").hex() == "530f8afbc74536b9a963b4f1c4cb738b"


def test_aes_gcm_round_trip_and_tamper() -> None:
    aead = AesGcm(KEY)
    sealed = aead.seal(NONCE, b"secret", b"aad")
    assert aead.open(NONCE, sealed, b"aad") == b"secret"
    with pytest.raises(IntegrityError):
        aead.open(NONCE, sealed, b"other aad")
    with pytest.raises(IntegrityError):
        aead.open(NONCE, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"aad")
    with pytest.raises(IntegrityError):
        aead.open(NONCE, b"short", b"aad")


@given(st.binary(min_size=1, max_size=200), st.data())
def test_any_flipped_bit_fails(plaintext: bytes, data: st.DataObject) -> None:
    aead = AesGcm(KEY)
    sealed = bytearray(aead.seal(NONCE, plaintext, b""))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        aead.open(NONCE, bytes(sealed), b"")


def test_wrong_key_length() -> None:
    with pytest.raises(UsageError):
        AesGcm(b"short")


def test_signing_round_trip_text_form_and_wrong_signer() -> None:
    alice, mallory = SigningKey.generate(), SigningKey.generate()
    text = alice.verify_key().to_text()
    assert text.startswith("ed25519:MCowBQYDK2VwAyEA")
    vk = VerifyKey.from_text(text)
    vk.verify(alice.sign(b"msg"), b"msg")
    with pytest.raises(AuthenticationError):
        vk.verify(mallory.sign(b"msg"), b"msg")
    with pytest.raises(AuthenticationError):
        vk.verify(alice.sign(b"msg"), b"msg2")
    again = SigningKey.from_pem(alice.to_pem())
    assert again.verify_key() == vk


#: An Ed25519 key whose algorithm OID's first arc was flipped (0.3.101.112): cryptography
#: raises UnsupportedAlgorithm, not ValueError (found by tests/policy/test_yaml.py's fuzzing).
UNKNOWN_ALGORITHM = "ed25519:MCowBQYDA2VwAyEAiRhHj53RKFdTDFItrNjUnmbHQk5CFvOQUgfWUnl3AC0="


@pytest.mark.parametrize(
    "text", ["", "ed25519:", "ed25519:!!", "rsa:AAAA", "ed25519:AAAA", UNKNOWN_ALGORITHM]
)
def test_bad_public_key_text(text: str) -> None:
    with pytest.raises(UsageError):
        VerifyKey.from_text(text)


def test_bad_pem() -> None:
    with pytest.raises(UsageError):
        SigningKey.from_pem(b"not a key")


def test_raw_ed25519_keys_rfc8032_test_1() -> None:
    # RFC 8032, section 7.1, TEST 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key = SigningKey.from_seed(seed)
    assert key.verify_key().raw() == public
    assert key.sign(b"") == signature
    VerifyKey.from_raw(public).verify(signature, b"")
    with pytest.raises(UsageError):
        SigningKey.from_seed(seed[:31])
    with pytest.raises(UsageError):
        VerifyKey.from_raw(public + b"\x00")


def test_an_unknown_key_algorithm_is_a_securetf_error() -> None:
    import base64

    from securetf.crypto.x509ca import verify_ec_signature

    der = base64.b64decode(UNKNOWN_ALGORITHM.removeprefix("ed25519:"))
    with pytest.raises(AuthenticationError):
        verify_ec_signature(der, b"sig", b"msg")

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.errors import AuthenticationError, IntegrityError, UsageError
from securetf.volume import VolumeKey
from securetf.volume._manifest import HEADER, Manifest, decode, encode
from securetf.volume._objects import FileEntry

KEY = VolumeKey(bytes(32))
ENTRY = FileEntry("dir/data.csv", bytes(16), bytes(32), 1234, 0o644, bytes(32))
MANIFEST = Manifest(b"V" * 16, 65536, 7, {ENTRY.path: ENTRY}, frozenset({"empty"}))
ENCODED = encode(MANIFEST, KEY)


def test_round_trip() -> None:
    assert decode(ENCODED, KEY) == MANIFEST


def test_names_and_sizes_are_not_in_the_clear() -> None:
    assert b"data.csv" not in ENCODED
    assert b"empty" not in ENCODED
    assert b"1234" not in ENCODED


def test_body_is_padded() -> None:
    small = encode(Manifest(b"V" * 16, 65536, 1), KEY)
    assert len(small) == HEADER.size + 256 + 16


def test_wrong_key_is_told_apart() -> None:
    with pytest.raises(AuthenticationError, match="wrong key"):
        decode(ENCODED, VolumeKey(bytes([1]) * 32))


def test_not_a_manifest() -> None:
    with pytest.raises(UsageError, match="not a securetf volume manifest"):
        decode(b"hello world" * 20, KEY)


@pytest.mark.parametrize("cut", [1, 16, 17, len(ENCODED) - HEADER.size])
def test_truncated(cut: int) -> None:
    with pytest.raises((IntegrityError, UsageError)):
        decode(ENCODED[:-cut], KEY)


def test_extended() -> None:
    with pytest.raises(IntegrityError):
        decode(ENCODED + b"\0", KEY)


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=len(ENCODED) * 8 - 1))
def test_any_flipped_bit_is_refused(bit: int) -> None:
    data = bytearray(ENCODED)
    data[bit // 8] ^= 1 << (bit % 8)
    byte = bit // 8
    expected: type[Exception] = IntegrityError  # the AEAD covers header and body
    if byte < 8:
        expected = UsageError  # the magic: not a manifest at all
    elif 12 <= byte < 28 or 68 <= byte < 100:
        expected = AuthenticationError  # volume id or key check: cannot tell from a wrong key
    with pytest.raises(expected) as info:
        decode(bytes(data), KEY)
    if expected is IntegrityError:
        assert str(info.value) == "integrity check failed"

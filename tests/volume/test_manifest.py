from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.errors import AuthenticationError, IntegrityError, UsageError
from securetf.volume import VolumeKey, _manifest
from securetf.volume._manifest import HEADER, Manifest, decode, encode
from securetf.volume._objects import FileEntry
from securetf.volume._padding import padded_size

from .forge import Body, forge

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


def _other(path: str) -> dict[str, object]:
    """A well-formed file entry at ``path`` with an object of its own."""
    return {**_manifest._entry_to_json(ENTRY), "path": path, "object": os.urandom(16).hex()}


_BAD_TREES: dict[str, Callable[[Body], None]] = {
    "dir at a file's path": lambda b: b["dirs"].append(ENTRY.path),
    "implied dir at a file's path": lambda b: b["files"].append(_other(ENTRY.path + "/x")),
    "file under a file's path": lambda b: b["files"].append(_other(ENTRY.path + "/x/y")),
    "dir under a file": lambda b: b["dirs"].append(ENTRY.path + "/x"),
    "file at a parent's path": lambda b: b["files"].insert(0, _other("dir")),
    "duplicate path": lambda b: b["files"].append(_other(ENTRY.path)),
    "duplicate object": lambda b: b["files"].insert(0, {**b["files"][0], "path": "a"}),
    "duplicate dir": lambda b: b["dirs"].append("empty"),
    "unsorted files": lambda b: b["files"].append(_other("a")),
    "unsorted dirs": lambda b: b["dirs"].append("a"),
    "dirs not a list": lambda b: b.update(dirs="x"),
    "files not a list": lambda b: b.update(files={}),
}


@pytest.mark.parametrize("change", sorted(_BAD_TREES))
def test_authentic_manifest_with_a_bad_tree_is_refused(change: str) -> None:
    # A key holder (or a writer's bug) can seal any body; the reader still refuses a tree
    # that no directory could hold, before anything is built from it.
    with pytest.raises(IntegrityError) as info:
        decode(forge(ENCODED, KEY, _BAD_TREES[change]), KEY)
    assert str(info.value) == "integrity check failed"


@pytest.mark.parametrize(
    "pad",
    [
        lambda plain: plain + b" ",  # longer than the padded size
        lambda plain: plain.rstrip(b" ") + b"\n" * (len(plain) - len(plain.rstrip(b" "))),
        lambda plain: plain.rstrip(b" ") + b" \0" + plain[len(plain.rstrip(b" ")) + 2 :],
    ],
)
def test_authentic_manifest_with_bytes_beyond_its_json_is_refused(
    pad: Callable[[bytes], bytes],
) -> None:
    with pytest.raises(IntegrityError):
        decode(forge(ENCODED, KEY, lambda b: None, raw=pad), KEY)


def test_duplicate_json_keys_are_refused() -> None:
    def twice(plain: bytes) -> bytes:
        text = plain.rstrip(b" ")
        doubled = b'{"dirs":[],' + text[1:]
        return doubled + b" " * (padded_size(len(doubled)) - len(doubled))

    with pytest.raises(IntegrityError):
        decode(forge(ENCODED, KEY, lambda b: None, raw=twice), KEY)


def test_encode_refuses_a_tree_it_could_not_read_back() -> None:
    bad = Manifest(b"V" * 16, 65536, 7, {ENTRY.path: ENTRY}, frozenset({ENTRY.path}))
    with pytest.raises(UsageError, match="both a file and a directory"):
        encode(bad, KEY)


def test_special_mode_bits_are_dropped_when_read() -> None:
    def setuid(body: Body) -> None:
        body["files"][0]["mode"] = 0o7755

    assert decode(forge(ENCODED, KEY, setuid), KEY).files[ENTRY.path].mode == 0o755

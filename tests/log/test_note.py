"""Signed notes and their keys, against golang.org/x/mod's sumdb/note known answers.

Source of PETER_*/ENOCH_*/TEXT and the manglings: golang.org/x/mod sumdb/note/note_test.go
(BSD-3-Clause), the reference implementation that C2SP signed-note describes.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.errors import UsageError
from securetf.log import (
    Ed25519Signer,
    Ed25519Verifier,
    NoteError,
    Verifiers,
    key_id,
    open_note,
    parse_vkey,
    sign_note,
)
from securetf.log._limits import MAX_NOTE_SIZE, MAX_SIGNATURES

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n".encode()
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n".encode()


def _peter() -> Ed25519Verifier:
    return parse_vkey(PETER_VKEY)


def test_go_sign_known_answer() -> None:
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier().vkey() == PETER_VKEY
    assert sign_note(TEXT, [signer]) == TEXT + b"\n" + PETER_SIG


def test_key_id_is_the_spec_hash() -> None:
    peter = _peter()
    assert key_id("PeterNeumann", 0x01, peter.key.raw()) == 0xC74F20A3


def test_go_open_one_known_one_unknown() -> None:
    opened = open_note(TEXT + b"\n" + PETER_SIG + ENOCH_SIG, Verifiers([_peter()]))
    assert opened.text == TEXT
    assert [(v.name, s.key_id) for v, s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in opened.unverified] == [("EnochRoot", 0xAF0CFE78)]


def test_go_open_both_known_and_none_known() -> None:
    both = Verifiers([_peter(), parse_vkey(ENOCH_VKEY)])
    opened = open_note(TEXT + b"\n" + PETER_SIG + ENOCH_SIG, both)
    assert [v.name for v, _ in opened.verified] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(TEXT + b"\n" + PETER_SIG + ENOCH_SIG, Verifiers([]))


def test_go_repeated_lines_count_once() -> None:
    abcd = ENOCH_SIG[:60] + b"ABCD" + ENOCH_SIG[60:]
    note = TEXT + b"\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + abcd
    opened = open_note(note, Verifiers([_peter()]))
    assert len(opened.verified) == 1
    assert len(opened.unverified) == 2  # the two distinct Enoch lines


def test_go_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    bad = PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"PeterNeumann\+c74f20a3 does not verify"):
        open_note(TEXT + b"\n" + bad, Verifiers([_peter()]))
    # Also when a good line by the same key comes first.
    with pytest.raises(NoteError):
        open_note(TEXT + b"\n" + PETER_SIG + bad, Verifiers([_peter()]))


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + b"\n",
        TEXT + b"\n" + PETER_SIG[:-1],
        b"\x01" + TEXT + b"\n" + PETER_SIG,
        b"\xff" + TEXT + b"\n" + PETER_SIG,
        TEXT + b"\n" + f"\u2014 Bad Name {PETER_B64}".encode(),
        TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",
        # ours: a hyphen for the em dash, non-canonical base64, a short blob, a tab
        TEXT + b"\n" + PETER_SIG.replace("\u2014".encode(), b"-"),
        TEXT + b"\n" + PETER_SIG.replace(b"AM=", b"AN="),
        TEXT + b"\n" + "\u2014 PeterNeumann AAAAAA==\n".encode(),
        TEXT.replace(b" ", b"\t", 1) + b"\n" + PETER_SIG,
    ],
)
def test_go_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(NoteError):
        open_note(note, Verifiers([_peter()]))


def test_signature_count_and_size_limits() -> None:
    verifiers = Verifiers([_peter()])
    open_note(TEXT + b"\n" + PETER_SIG * MAX_SIGNATURES, verifiers)
    with pytest.raises(NoteError, match="signatures"):
        open_note(TEXT + b"\n" + PETER_SIG * (MAX_SIGNATURES + 1), verifiers)
    long_text = b"x" * (MAX_NOTE_SIZE - len(PETER_SIG)) + b"\n"
    with pytest.raises(NoteError, match="bytes"):
        open_note(long_text + b"\n" + PETER_SIG, verifiers)


def test_go_vkey_manglings_are_refused() -> None:
    parse_vkey(PETER_VKEY)
    bad = {
        PETER_VKEY[i:j] for i in range(len(PETER_VKEY)) for j in range(i + 1, len(PETER_VKEY) + 1)
    }
    bad.discard(PETER_VKEY)
    bad |= {
        PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        for i in range(len(PETER_VKEY))
    }
    bad |= {
        # wrong length key, with adjusted key hash; unknown algorithm, with adjusted hash
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    }
    accepted = []
    for key in sorted(bad):
        try:
            parse_vkey(key)
        except UsageError:
            continue
        accepted.append(key)
    assert accepted == []


def test_go_skey_manglings_are_refused() -> None:
    bad = {
        PETER_SKEY[i:j]
        for i in range(0, len(PETER_SKEY), 3)
        for j in range(i + 1, len(PETER_SKEY) + 1, 3)
    }
    bad.discard(PETER_SKEY)
    bad |= {
        PETER_SKEY[:i] + chr(ord(PETER_SKEY[i]) + 1) + PETER_SKEY[i + 1 :]
        for i in range(len(PETER_SKEY))
    }
    accepted = []
    for key in sorted(bad):
        try:
            Ed25519Signer.from_skey(key)
        except UsageError:
            continue
        accepted.append(key)
    assert accepted == []


def test_two_trusted_keys_with_one_name_and_id_are_a_configuration_error() -> None:
    with pytest.raises(UsageError, match="two trusted keys"):
        Verifiers([_peter(), _peter()])


def test_sign_note_refuses_what_it_could_not_open() -> None:
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    for text in (b"abc", b"a\x01b\n", b"\xff\n"):
        with pytest.raises(UsageError):
            sign_note(text, [signer])
    with pytest.raises(UsageError):
        sign_note(TEXT, [])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_single_byte_change_is_refused(data: st.DataObject) -> None:
    note = bytearray(TEXT + b"\n" + PETER_SIG)
    i = data.draw(st.integers(0, len(note) - 1))
    note[i] = data.draw(st.integers(0, 255).filter(lambda b: b != note[i]))
    with pytest.raises(NoteError):
        open_note(bytes(note), Verifiers([_peter()]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_give_a_note_error_or_a_verified_note(data: bytes) -> None:
    with contextlib.suppress(NoteError):
        open_note(data, Verifiers([_peter()]))


@pytest.mark.parametrize("code", [c for c in range(0x20) if c != 0x0A])
def test_every_control_character_but_newline_is_refused(code: int) -> None:
    note = TEXT.replace(b" ", bytes([code]), 1) + b"\n" + PETER_SIG
    with pytest.raises(NoteError, match="control character"):
        open_note(note, Verifiers([_peter()]))

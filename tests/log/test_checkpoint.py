"""Checkpoints, cosignatures and the k-of-n check.

Known answers from C2SP tlog-checkpoint and tlog-cosignature (their example notes),
golang.org/x/mod sumdb/tlog note_test.go (a tree head), and transparency-dev/formats
note/note_cosigv1_test.go (a cosignature vkey and a cosignature's timestamp); each named
where it is used.
"""

from __future__ import annotations

import base64
import logging

import pytest

from securetf.crypto import SigningKey
from securetf.errors import UsageError
from securetf.log import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    NoteError,
    WitnessPolicy,
    leaf_hash,
    parse_vkey,
    sign_note,
    signature_line,
    verify_checkpoint,
)
from securetf.log._checkpoint import CheckpointSigner

ORIGIN = "cas.example/log"
NOW = 1_700_000_000

# C2SP tlog-checkpoint and tlog-cosignature: the example checkpoint, cosigned.
C2SP_BODY = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
C2SP_LOG_SIG = (
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8="
)
C2SP_COSIG = (
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


def test_c2sp_example_checkpoint_parses() -> None:
    cp = Checkpoint.parse(C2SP_BODY)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.text() == C2SP_BODY


def test_c2sp_example_cosignature_carries_the_spec_timestamp() -> None:
    # tlog-cosignature's example signed message is "cosignature/v1\ntime 1679315147\n...".
    blob = base64.b64decode(C2SP_COSIG)
    assert CosignatureVerifier.timestamp(blob[4:]) == 1679315147


def test_formats_cosignature_known_answers() -> None:
    # transparency-dev/formats note_cosigv1_test.go: TestCoSigV1NewVerifier, TestCoSigV1Timestamp.
    witness = parse_vkey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert isinstance(witness, CosignatureVerifier)
    assert witness.key_id == 0xDA77ADE7
    log_key = parse_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert type(log_key) is Ed25519Verifier
    for bad in (
        "bananas.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
    ):
        with pytest.raises(UsageError):
            parse_vkey(bad)
    works = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert CosignatureVerifier.timestamp(works[4:]) == 1727964367
    plain = base64.b64decode(
        "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
    )
    with pytest.raises(NoteError):
        CosignatureVerifier.timestamp(plain[4:])


def test_go_tree_head_parses() -> None:
    # golang.org/x/mod sumdb/tlog note_test.go: TestParseTree.
    text = b"go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    cp = Checkpoint.parse(text)
    assert (cp.size, cp.root) == (123456789012, leaf_hash(b"hello world"))
    assert Checkpoint.parse(text + b"JOE\n").extensions == ("JOE",)


@pytest.mark.parametrize(
    "text",
    [
        b"go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        b"go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        C2SP_BODY[:-1],  # no final newline
        C2SP_BODY + b"\n",  # an empty extension line
        b"\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        C2SP_BODY.replace(b"20852163", b"020852163"),  # leading zero
        C2SP_BODY.replace(b"20852163", b"+20852163"),
        C2SP_BODY.replace(b"20852163", "\u0662".encode()),  # a non-ASCII digit
        C2SP_BODY.replace(b"20852163", b"9223372036854775808"),  # 2**63
        C2SP_BODY.replace(b"20852163", b"9" * 5000),
        C2SP_BODY.replace(b"q2I=", b"q2J="),  # non-canonical base64
        C2SP_BODY.replace(b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", b"AAAA"),
        b"example.com\n5\n",
        b"example.com\n5\n\xff\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: bytes) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_a_checkpoint_cannot_be_built_to_frame_another() -> None:
    root = bytes(32)
    with pytest.raises(UsageError):
        Checkpoint("evil\n999", 1, root)
    with pytest.raises(UsageError):
        Checkpoint(ORIGIN, 1, root, ("",))
    with pytest.raises(UsageError):
        Checkpoint(ORIGIN, -1, root)
    with pytest.raises(UsageError):
        Checkpoint(ORIGIN, 1, root[:31])
    assert Checkpoint(ORIGIN, 0, root).text().split(b"\n")[1] == b"0"


class _Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def _seeded(n: int) -> SigningKey:
    return SigningKey.from_seed(bytes([n]) * 32)


LOG = Ed25519Signer(ORIGIN, _seeded(1))
WITNESSES = [
    CosignatureSigner(f"witness{i}.example/w", _seeded(10 + i), clock=_Clock(NOW + i))
    for i in range(3)
]


def _note(cosigners: list[CosignatureSigner], body: bytes | None = None) -> bytes:
    text = body or Checkpoint(ORIGIN, 42, leaf_hash(b"x")).text()
    return sign_note(text, [LOG]) + b"".join(signature_line(w, text) for w in cosigners)


def _policy(threshold: int) -> WitnessPolicy:
    return WitnessPolicy.of([w.verifier() for w in WITNESSES], threshold)


def test_k_of_n_cosignatures_are_counted() -> None:
    note = _note(WITNESSES[:2])
    verified = verify_checkpoint(note, LOG.verifier(), _policy(2))
    assert verified.checkpoint.size == 42
    assert verified.note == note
    assert dict(verified.cosigned) == {"witness0.example/w": NOW, "witness1.example/w": NOW + 1}
    with pytest.raises(NoteError, match="2 of the 3 witness cosignatures"):
        verify_checkpoint(note, LOG.verifier(), _policy(3))


def test_signatures_of_strangers_and_replays_under_other_names_do_not_count() -> None:
    text = Checkpoint(ORIGIN, 42, leaf_hash(b"x")).text()
    stranger = CosignatureSigner("stranger.example/w", _seeded(99), clock=_Clock(NOW))
    # witness0's signature bytes under another name: an unknown key, so ignored.
    line = signature_line(WITNESSES[0], text).replace(b"witness0", b"witness7")
    note = sign_note(text, [LOG]) + signature_line(stranger, text) + line
    with pytest.raises(NoteError, match="0 of the 1"):
        verify_checkpoint(note, LOG.verifier(), _policy(1))


def test_a_forged_cosignature_by_a_trusted_witness_rejects_the_note() -> None:
    text = Checkpoint(ORIGIN, 42, leaf_hash(b"x")).text()
    other = Checkpoint(ORIGIN, 43, leaf_hash(b"y")).text()
    note = sign_note(text, [LOG]) + signature_line(WITNESSES[0], other)
    with pytest.raises(NoteError, match=r"witness0\.example/w"):
        verify_checkpoint(note, LOG.verifier(), _policy(1))


def test_a_changed_timestamp_breaks_the_cosignature() -> None:
    text = Checkpoint(ORIGIN, 42, leaf_hash(b"x")).text()
    line = signature_line(WITNESSES[0], text)
    name, blob64 = line[len("\u2014 ".encode()) : -1].split(b" ")
    blob = bytearray(base64.b64decode(blob64))
    blob[11] ^= 1  # the timestamp's last byte
    forged = "\u2014 ".encode() + name + b" " + base64.b64encode(bytes(blob)) + b"\n"
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(sign_note(text, [LOG]) + forged, LOG.verifier(), _policy(1))


def test_cosignatures_cover_extension_lines() -> None:
    body = Checkpoint(ORIGIN, 42, leaf_hash(b"x"), ("ext one",)).text()
    note = _note(WITNESSES, body)
    assert verify_checkpoint(note, LOG.verifier(), _policy(3)).checkpoint.extensions == ("ext one",)
    changed = note.replace(b"ext one", b"ext two")
    with pytest.raises(NoteError):
        verify_checkpoint(changed, LOG.verifier(), _policy(1))


def test_the_log_signature_and_origin_are_required() -> None:
    text = Checkpoint(ORIGIN, 42, leaf_hash(b"x")).text()
    only_witnesses = sign_note(text, WITNESSES)
    with pytest.raises(NoteError, match="not signed by the log key"):
        verify_checkpoint(only_witnesses, LOG.verifier(), _policy(1))
    foreign = Checkpoint("other.example/log", 42, leaf_hash(b"x")).text()
    with pytest.raises(NoteError, match=r"not 'cas\.example/log'"):
        verify_checkpoint(_note(WITNESSES, foreign), LOG.verifier(), _policy(1))
    # A log whose key name differs from its origin names the origin explicitly.
    verified = verify_checkpoint(
        _note(WITNESSES[:1], foreign), LOG.verifier(), _policy(1), origin="other.example/log"
    )
    assert verified.checkpoint.origin == "other.example/log"


def test_policies_are_explicit_and_count_each_witness_once() -> None:
    keys = [w.verifier() for w in WITNESSES]
    for threshold in (0, 4):
        with pytest.raises(UsageError, match="threshold"):
            WitnessPolicy.of(keys, threshold)
    with pytest.raises(UsageError, match="threshold"):
        WitnessPolicy.of([], 0)
    same_key = CosignatureVerifier("alias.example/w", keys[0].key)
    with pytest.raises(UsageError, match="listed once"):
        WitnessPolicy.of([keys[0], same_key], 2)


def test_the_unsafe_policy_works_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        verified = verify_checkpoint(_note([]), LOG.verifier(), WitnessPolicy.unsafe_no_witnesses())
    assert verified.cosigned == {}
    assert "without witnesses" in caplog.text


def test_a_timestamp_beyond_2_63_is_refused() -> None:
    with pytest.raises(NoteError, match="2\\^63"):
        CosignatureVerifier.timestamp(b"\x80" + bytes(71))
    with pytest.raises(UsageError):
        CosignatureSigner("w.example", _seeded(3), clock=_Clock(-1)).sign(b"x\n")


@pytest.mark.parametrize("size", [0, 1, 255, 256, 1_000_003, 2**40])
def test_the_checkpoint_signer_gives_the_note_sign_note_gives(size: int) -> None:
    signer = Ed25519Signer("example.com/log", SigningKey.generate())
    root = bytes(range(size % 200, size % 200 + 32))
    expected = sign_note(Checkpoint(signer.name, size, root).text(), [signer])
    assert CheckpointSigner(signer).sign(size, root) == expected


def test_the_checkpoint_signer_refuses_what_is_no_checkpoint() -> None:
    signer = CheckpointSigner(Ed25519Signer("example.com/log", SigningKey.generate()))
    for size, root in ((-1, bytes(32)), (2**64, bytes(32)), (5, bytes(31))):
        with pytest.raises(UsageError):
            signer.sign(size, root)
    with pytest.raises(UsageError):
        CheckpointSigner(Ed25519Signer("bad name", SigningKey.generate()))

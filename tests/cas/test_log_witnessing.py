"""The CAS's side of witnessing, in-process over a real store: only its witnesses'
valid cosignatures are kept, a checkpoint counts once k of them cosigned it, witnesses are
led to one tree, and a database behind its counted checkpoint gives clients nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from securetf.cas import Cas
from securetf.cas.translog import CasLog, Witnessing
from securetf.crypto import SigningKey, random_bytes
from securetf.errors import NotFoundError, UsageError
from securetf.log import (
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    WitnessPolicy,
    signature_line,
    verify_checkpoint,
)
from securetf.protocol.logkey import log_origin

from .support import AUDIT_KEY, Clock, Owners, policy_cas

SIGNER = Ed25519Signer(log_origin(AUDIT_KEY.verify_key()), SigningKey.generate())


def _witness(name: str) -> CosignatureSigner:
    return CosignatureSigner.load(CosignatureSigner.skey(name, random_bytes(32)), clock=time.time)


@pytest.fixture
def cas(db_url: str, tmp_path: Path, clock: Clock, owners: Owners) -> Cas:
    return policy_cas(db_url, tmp_path, clock, owners)


def _log(cas: Cas, witnesses: list[CosignatureSigner], k: int) -> CasLog:
    keys = Witnessing.parse([w.verifier().vkey() for w in witnesses], k)
    witnessing = Witnessing(
        keys, k, cas.log_cosign, cas.log_cosignatures, cas.log_witnessed, cas.log_counted
    )
    return CasLog(cas.log_tree(), SIGNER, witnessing)


def _cosign(log: CasLog, w: CosignatureSigner) -> int:
    """What a witness does: cosign the checkpoint it is asked to; the size it cosigned."""
    note = log.witness_checkpoint()
    text = note[: note.index(b"\n\n") + 1]
    size = Checkpoint.parse(text).size
    log.add_cosignature(size, signature_line(w, text))
    return size


def test_a_checkpoint_counts_once_k_witnesses_cosigned_it(cas: Cas) -> None:
    w1, w2, w3 = _witness("w1"), _witness("w2"), _witness("w3")
    log = _log(cas, [w1, w2, w3], 2)
    with pytest.raises(NotFoundError):
        log.checkpoint()  # nothing cosigned yet: clients get nothing
    assert _cosign(log, w1) == 1
    with pytest.raises(NotFoundError):
        log.checkpoint()  # one of two
    cas.log_identity(b'{"type":"test"}')  # the log grows meanwhile
    assert _cosign(log, w2) == 1  # led to the tree w1 cosigned, not the newer one
    note = log.checkpoint()
    policy = WitnessPolicy.of([w1.verifier(), w2.verifier(), w3.verifier()], 2)
    verified = verify_checkpoint(note, SIGNER.verifier(), policy)
    assert verified.checkpoint.size == 1
    assert set(verified.cosigned) == {"w1", "w2"}
    # The next round moves on to the newer tree; the counted one stays until k meet there.
    assert _cosign(log, w3) == 2
    assert verify_checkpoint(log.checkpoint(), SIGNER.verifier(), policy).checkpoint.size == 1
    assert _cosign(log, w1) == 2
    assert verify_checkpoint(log.checkpoint(), SIGNER.verifier(), policy).checkpoint.size == 2


def test_only_valid_cosignatures_by_its_witnesses_are_kept(cas: Cas) -> None:
    w1 = _witness("w1")
    log = _log(cas, [w1], 1)
    text = Checkpoint(SIGNER.name, 1, cas.log_tree().root(1)).text()
    stranger = _witness("w1")  # the same name, another key
    with pytest.raises(UsageError):
        log.add_cosignature(1, signature_line(stranger, text))
    other = Checkpoint(SIGNER.name, 1, bytes(32)).text()  # another root at this size
    with pytest.raises(UsageError):
        log.add_cosignature(1, signature_line(w1, other))
    with pytest.raises(UsageError):
        log.add_cosignature(1, b"\xe2\x80\x94 w1 " + b"A" * 600 + b"\n")  # too long
    with pytest.raises(NotFoundError):
        log.add_cosignature(2, signature_line(w1, text))  # a tree the log never had
    assert cas.log_cosignatures() == []
    assert log.add_cosignature(1, signature_line(w1, text))


@pytest.mark.parametrize(
    ("count", "k"), [(2, 0), (2, 3), (0, 1)], ids=["k=0", "k>n", "no witnesses"]
)
def test_a_threshold_outside_1_to_n_is_refused(count: int, k: int) -> None:
    keys = [_witness(f"w{i}").verifier().vkey() for i in range(count)]
    with pytest.raises(UsageError):
        Witnessing.parse(keys, k)


def test_a_log_key_is_not_a_witness_key() -> None:
    with pytest.raises(UsageError, match="not a witness"):
        Witnessing.parse([SIGNER.verifier().vkey()], 1)

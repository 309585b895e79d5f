"""Owners' recovery shares of the master key: any k of n rebuild it, fewer give nothing,
and a share of another split or a forged one is refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.cas.master_key import MasterKey
from securetf.cas.recovery import RecoveryError, RecoverySet, Share, ShareSet
from securetf.crypto.sealed_box import BoxKey
from securetf.errors import UsageError

INFO = b"test"
NAMES = ["alice", "bob", "carol", "dave"]


def key_of(master: MasterKey) -> bytes:
    return master.derive(salt=b"", info=INFO)


def owners(n: int) -> tuple[list[BoxKey], RecoverySet]:
    keys = [BoxKey() for _ in range(n)]
    return keys, RecoverySet(2, tuple((NAMES[i], k.public()) for i, k in enumerate(keys)))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_any_k_of_n_shares_rebuild_the_key(kn: tuple[int, int]) -> None:
    k, n = kn
    master = MasterKey.generate()
    shares = master.split(k, n)
    for subset in itertools.combinations(shares, k):
        assert key_of(MasterKey.combine(list(subset))) == key_of(master)
    if k > 1:  # k-1 shares make some other key
        assert key_of(MasterKey.combine(shares[: k - 1])) != key_of(master)


def test_fewer_than_k_owners_recover_nothing() -> None:
    keys, recovery = owners(3)
    master = MasterKey.generate()
    shares = ShareSet.create(master, recovery)
    alice = shares.open_share(keys[0])
    with pytest.raises(RecoveryError, match="1 distinct owners' shares given, 2 of 3 needed"):
        shares.combine([alice])
    with pytest.raises(RecoveryError, match="1 distinct owners' shares given"):
        shares.combine([alice, alice])  # one owner twice is still one owner
    for pair in itertools.combinations(range(3), 2):
        rebuilt = shares.combine([shares.open_share(keys[i]) for i in pair])
        assert key_of(rebuilt) == key_of(master)


def test_a_forged_or_foreign_share_is_refused() -> None:
    keys, recovery = owners(3)
    master = MasterKey.generate()
    shares = ShareSet.create(master, recovery)
    alice, bob = shares.open_share(keys[0]), shares.open_share(keys[1])
    forged = Share(bob.split, bob.owner, bob.index, bytes(32))
    with pytest.raises(RecoveryError, match="do not rebuild"):
        shares.combine([alice, forged])
    other = ShareSet.create(master, recovery)  # a later split of the same key
    with pytest.raises(RecoveryError, match="another backup"):
        shares.combine([alice, other.open_share(keys[1])])
    moved = Share(bob.split, "alice", bob.index, bob.value)
    with pytest.raises(RecoveryError, match="holds no share 2"):
        shares.combine([moved, alice])


def test_a_share_opens_only_with_its_owners_key() -> None:
    keys, recovery = owners(2)
    shares = ShareSet.create(MasterKey.generate(), recovery)
    with pytest.raises(RecoveryError, match="holds no share of this backup"):
        shares.open_share(BoxKey())
    # The sealed shares swapped between owners: neither opens.
    swapped = ShareSet(recovery, shares.split, shares.sealed[::-1], shares.mac)
    with pytest.raises(RecoveryError, match="does not open"):
        swapped.open_share(keys[0])


def test_the_share_set_is_authenticated_under_the_master_key() -> None:
    from securetf.errors import IntegrityError

    _keys, recovery = owners(2)
    master = MasterKey.generate()
    shares = ShareSet.create(master, recovery)
    shares.verify(master)
    with pytest.raises(IntegrityError):
        shares.verify(MasterKey.generate())
    attacker = BoxKey()
    replaced = RecoverySet(1, ((NAMES[0], attacker.public()),))
    with pytest.raises(IntegrityError):
        ShareSet(replaced, shares.split, shares.sealed[:1], shares.mac).verify(master)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"threshold": 3, "owners": []}, "non-empty"),
        (
            {"threshold": 0, "owners": [{"name": "a", "public_key": "x25519:" + "00" * 32}]},
            "between 1 and 1",
        ),
        ({"threshold": 1, "owners": [{"name": "a", "public_key": "ed25519:AA"}]}, "x25519:<64 hex"),
        (
            {"threshold": 1, "owners": [{"name": "a", "public_key": "x25519:" + "00" * 32}] * 2},
            "distinct",
        ),
        ({"owners": []}, "expected"),
    ],
)
def test_a_bad_recovery_set_is_refused(value: object, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        RecoverySet.from_json(value, "keys.json")

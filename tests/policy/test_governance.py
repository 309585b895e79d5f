"""The update rules: each test breaks one rule and shows the change is refused."""

from __future__ import annotations

from typing import Any

import pytest

from securetf.crypto import SigningKey
from securetf.errors import PolicyError
from securetf.policy import (
    GovernanceError,
    Policy,
    SignedRequest,
    ThresholdNotMet,
    VerifiedChange,
    check_create,
    check_read,
    check_update,
    limits,
    policy_hash,
    sign_request,
)
from securetf.policy._requests import Action
from tests.policy._support import NOW, key, make_policy

V1 = make_policy()
V1_HASH = policy_hash(V1)
V2 = make_policy(version=2, predecessor=V1_HASH, threshold=1)
NONE: frozenset[str] = frozenset()


def sign(
    who: str | SigningKey,
    policy: Policy,
    action: Action = "update",
    *,
    at: int = NOW,
    digest: str | None = None,
    version: int | None = None,
    request_id: str | None = None,
) -> SignedRequest:
    signer = key(who) if isinstance(who, str) else who
    return sign_request(
        signer,
        action=action,
        policy=policy.name,
        version=version or policy.version,
        policy_hash=digest or policy_hash(policy),
        issued_at=at,
        request_id=request_id,
    )


def update(signatures: list[SignedRequest], proposed: Policy = V2, **kwargs: Any) -> VerifiedChange:
    options: dict[str, Any] = {"now": NOW, "seen_request_ids": NONE, "imports": {}}
    options.update(kwargs)
    return check_update(V1, V1_HASH, proposed, signatures, **options)


def _refused(
    fragment: str, signatures: list[SignedRequest], proposed: Policy = V2, **kwargs: object
) -> None:
    with pytest.raises(GovernanceError, match=fragment) as caught:
        update(signatures, proposed, **kwargs)
    assert not isinstance(caught.value, ThresholdNotMet)


# --- create ---------------------------------------------------------------------------------


def test_create_signed_by_one_owner() -> None:
    signed = sign("bob", V1, "create")
    verified = check_create(V1, [signed], now=NOW, seen_request_ids=NONE, imports={})
    assert verified.policy is V1
    assert verified.policy_hash == V1_HASH
    assert [a.owner for a in verified.approvals] == ["bob"]
    assert verified.request_ids == {signed.unverified_request().request_id}


def test_create_refuses_non_owner_unsigned_wrong_action_and_later_versions() -> None:
    with pytest.raises(GovernanceError, match="not an owner"):
        check_create(
            V1, [sign("mallory", V1, "create")], now=NOW, seen_request_ids=NONE, imports={}
        )
    with pytest.raises(GovernanceError, match="at least one owner"):
        check_create(V1, [], now=NOW, seen_request_ids=NONE, imports={})
    with pytest.raises(GovernanceError, match="'update' request"):
        check_create(V1, [sign("alice", V1, "update")], now=NOW, seen_request_ids=NONE, imports={})
    with pytest.raises(GovernanceError, match="version 1"):
        check_create(V2, [sign("alice", V2, "create")], now=NOW, seen_request_ids=NONE, imports={})


def test_create_refuses_a_replayed_request() -> None:
    signed = sign("alice", V1, "create")
    seen = check_create(V1, [signed], now=NOW, seen_request_ids=NONE, imports={}).request_ids
    with pytest.raises(GovernanceError, match="replay"):
        check_create(V1, [signed], now=NOW, seen_request_ids=seen, imports={})


# --- update: success and pending ------------------------------------------------------------


def test_update_with_threshold_of_distinct_current_owners() -> None:
    verified = update([sign("alice", V2), sign("carol", V2, "approve")])
    assert {a.owner for a in verified.approvals} == {"alice", "carol"}


def test_fewer_signatures_than_threshold_is_pending_then_approved() -> None:
    first = sign("alice", V2)
    with pytest.raises(ThresholdNotMet) as caught:
        update([first])
    pending = caught.value
    assert (pending.count, pending.needed) == (1, 2)
    seen = pending.request_ids
    # Later (past the first request's lifetime), bob approves; alice's kept signature counts.
    later = NOW + limits.MAX_REQUEST_AGE_SECONDS * 10
    verified = update(
        [sign("bob", V2, "approve", at=later)],
        now=later,
        seen_request_ids=seen,
        pending=[a.signed for a in pending.approvals],
    )
    assert {a.owner for a in verified.approvals} == {"alice", "bob"}


def test_duplicate_signatures_count_once() -> None:
    signed = sign("alice", V2)
    with pytest.raises(ThresholdNotMet) as caught:
        update([signed, signed, sign("alice", V2, "approve")])
    assert caught.value.count == 1
    assert len(caught.value.request_ids) == 2


# --- update: refusals -----------------------------------------------------------------------


def test_non_owner_signature_is_refused() -> None:
    _refused("not an owner", [sign("alice", V2), sign("mallory", V2, "approve")])


def test_proposed_owners_cannot_approve_their_own_update() -> None:
    # The update adds dave as owner with threshold 1; dave's signature must not count.
    takeover = make_policy(version=2, predecessor=V1_HASH, owners=("dave",), threshold=1)
    _refused("not an owner", [sign("dave", takeover)], takeover)


def test_signature_over_another_hash_is_refused() -> None:
    other = make_policy(version=2, predecessor=V1_HASH, threshold=3)
    _refused("signed policy hash", [sign("alice", V2), sign("bob", V2, digest=policy_hash(other))])


def test_tampered_signature_or_swapped_signer_is_refused() -> None:
    good = sign("alice", V2)
    flipped = good.signature[:-1] + bytes([good.signature[-1] ^ 1])
    _refused("does not verify", [SignedRequest(good.signer, good.body, flipped)])
    _refused(
        "does not verify",
        [SignedRequest(key("bob").verify_key().to_text(), good.body, good.signature)],
    )


def test_wrong_predecessor_is_refused() -> None:
    stale = make_policy(version=2, predecessor="sha256:" + "0" * 64)
    _refused("predecessor is sha256:0000", [sign("alice", stale), sign("bob", stale)], stale)


def test_bad_version_step_is_refused() -> None:
    v3 = make_policy(version=3, predecessor=V1_HASH)
    _refused("must be version 2, not 3", [sign("alice", v3), sign("bob", v3)], v3)


def test_name_change_is_refused() -> None:
    renamed = make_policy(name="other", version=2, predecessor=V1_HASH)
    _refused("cannot rename", [sign("alice", renamed), sign("bob", renamed)], renamed)


def test_replayed_request_is_refused() -> None:
    signed = sign("alice", V2)
    request_id = signed.unverified_request().request_id
    _refused("replay", [signed, sign("bob", V2)], seen_request_ids=frozenset({request_id}))


def test_reused_request_id_within_one_batch_is_refused() -> None:
    a = sign("alice", V2, request_id="cd" * 16)
    b = sign("bob", V2, "approve", request_id="cd" * 16)
    _refused("share the request id", [a, b])


@pytest.mark.parametrize(
    ("issued_at", "fragment"),
    [
        (NOW - limits.MAX_REQUEST_AGE_SECONDS - 1, "old; requests expire"),
        (NOW + limits.MAX_CLOCK_SKEW_SECONDS + 1, "in the future"),
    ],
)
def test_stale_or_future_requests_are_refused(issued_at: int, fragment: str) -> None:
    _refused(fragment, [sign("alice", V2, at=issued_at), sign("bob", V2)])


def test_requests_at_the_freshness_edges_are_accepted() -> None:
    update(
        [
            sign("alice", V2, at=NOW - limits.MAX_REQUEST_AGE_SECONDS),
            sign("bob", V2, at=NOW + limits.MAX_CLOCK_SKEW_SECONDS),
        ]
    )


def test_create_request_cannot_count_for_an_update() -> None:
    _refused("'create' request", [sign("alice", V2, "create"), sign("bob", V2)])


def test_request_for_another_version_is_refused() -> None:
    _refused("version 3", [sign("alice", V2, version=3), sign("bob", V2)])


def test_pending_signatures_are_reverified() -> None:
    forged = sign("alice", V2)
    forged = SignedRequest(forged.signer, forged.body, bytes(64))
    _refused("does not verify", [sign("bob", V2)], pending=[forged])


def test_current_hash_must_match_the_current_policy() -> None:
    with pytest.raises(PolicyError, match="current_hash"):
        check_update(
            V1,
            "sha256:" + "1" * 64,
            V2,
            [sign("alice", V2)],
            now=NOW,
            seen_request_ids=NONE,
            imports={},
        )


def test_signatures_commit_to_the_imported_values() -> None:
    value, other = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32

    def over(who: str, imports: dict[str, str]) -> SignedRequest:
        return sign_request(
            key(who),
            action="update",
            policy=V2.name,
            version=V2.version,
            policy_hash=policy_hash(V2),
            issued_at=NOW,
            imports=imports,
        )

    both = [over("alice", {"data-key": value}), over("bob", {"data-key": value})]
    assert len(update(both, imports={"data-key": value}).approvals) == 2
    with pytest.raises(GovernanceError, match="imported secret values"):
        update(both, imports={"data-key": other})
    with pytest.raises(GovernanceError, match="imported secret values"):
        update(
            [over("alice", {"data-key": value}), over("bob", {"data-key": other})],
            imports={"data-key": value},
        )
    with pytest.raises(GovernanceError, match="imported secret values"):
        update([sign("alice", V2), sign("bob", V2)], imports={"data-key": value})


@pytest.mark.parametrize(("action", "target"), [("audit", ""), ("export", "other")])
def test_an_operation_request_counts_only_for_its_operation(action: str, target: str) -> None:
    made = sign_request(
        key("alice"),
        action=action,  # type: ignore[arg-type]
        policy=V1.name,
        version=V1.version,
        policy_hash=V1_HASH,
        issued_at=NOW,
        target=target,
    )
    with pytest.raises(GovernanceError, match="request"):
        check_read(V1, V1_HASH, made, action="export", target="key", now=NOW, seen_request_ids=NONE)

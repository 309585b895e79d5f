"""The trust decisions about policies: may this version be created, may it replace that one.

Pure: the caller (the CAS) passes the clock reading and the request ids it has seen, and
records what a successful check returns. Checks raise :class:`GovernanceError` (or its
:class:`ThresholdNotMet`) and return the verified result only when every rule holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from securetf.errors import AuthenticationError, PolicyError
from securetf.policy import limits
from securetf.policy._canonical import policy_hash
from securetf.policy._errors import GovernanceError
from securetf.policy._model import Governance, Policy
from securetf.policy._requests import (
    GOVERNANCE_ACTIONS,
    SIGNING_CONTEXT,
    Action,
    Request,
    SignedRequest,
)


@dataclass(frozen=True, slots=True)
class Approval:
    """A verified signature: which owner signed which request, and the signed bytes."""

    owner: str
    request: Request
    signed: SignedRequest


@dataclass(frozen=True, slots=True)
class VerifiedChange:
    """A create or update that passed every rule; the CAS may now store ``policy``."""

    policy: Policy
    policy_hash: str
    approvals: tuple[Approval, ...]
    """Every signature counted, one per owner (keep them with the version, for audit)."""
    request_ids: frozenset[str]
    """Request ids seen for the first time: record them before storing the policy."""


class ThresholdNotMet(GovernanceError):  # noqa: N818 (a state the CAS keeps, not a fault)
    """The update and its signatures are valid, but fewer distinct owners signed than needed.

    Nothing is in force yet. The CAS records :attr:`request_ids`, keeps the proposed policy
    as pending with :attr:`approvals`, and calls :func:`check_update` again with them as
    ``pending`` when another owner's approval arrives.
    """

    def __init__(
        self,
        *,
        count: int,
        needed: int,
        approvals: tuple[Approval, ...],
        request_ids: frozenset[str],
    ) -> None:
        super().__init__(
            f"the update is signed by {count} distinct owner(s) and needs {needed}; it waits "
            "as pending until more owners approve it (securetf policy approve)"
        )
        self.count = count
        self.needed = needed
        self.approvals = approvals
        self.request_ids = request_ids


@dataclass(frozen=True, slots=True)
class _Expected:
    governance: Governance
    policy: Policy
    policy_hash: str
    actions: tuple[Action, ...]
    imports: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    takes_detail: bool = False


def _verify(signed: SignedRequest, expected: _Expected) -> Approval:
    """Steps 1-4 for one signature: an owner's key, a valid signature, the exact request."""
    # 1. The signer is an owner of the governing policy.
    owner = expected.governance.owner_for(signed.signer)
    if owner is None:
        # Who the owners are is not told: a policy's owners are for its owners to know.
        raise GovernanceError(
            f"a signature is by {signed.signer[:40]}..., which is not an owner of the governing "
            "policy; only its owners may sign (check that you used your owner key)"
        )
    # 2. The signature covers exactly the bytes received.
    try:
        owner.verify_key().verify(signed.signature, SIGNING_CONTEXT + signed.body)
    except AuthenticationError:
        raise GovernanceError(f"the signature of owner {owner.name!r} does not verify") from None
    # 3. What was signed is this action on this exact policy version.
    request = signed.unverified_request()
    policy = expected.policy
    if request.action not in expected.actions:
        raise GovernanceError(
            f"{owner.name!r} signed a {request.action!r} request; this step takes "
            + " or ".join(repr(a) for a in expected.actions)
        )
    if (request.policy, request.version) != (policy.name, policy.version):
        raise GovernanceError(
            f"{owner.name!r} signed for policy {request.policy!r} version {request.version}, "
            f"not {policy.name!r} version {policy.version}"
        )
    if request.policy_hash != expected.policy_hash:
        raise GovernanceError(
            f"{owner.name!r} signed policy hash {request.policy_hash}, but this version hashes "
            f"to {expected.policy_hash}; sign the policy as submitted"
        )
    # 4. ... for exactly this target, these imported values and no unexpected arguments.
    if request.target != expected.target:
        raise GovernanceError(
            f"{owner.name!r} signed a {request.action!r} request for {request.target!r}, "
            f"not {expected.target!r}; sign a request for this operation"
        )
    if dict(request.imports) != dict(expected.imports):
        raise GovernanceError(
            f"{owner.name!r} signed for other imported secret values than those uploaded "
            f"(signed: {_names(request.imports)}; uploaded: {_names(expected.imports)}); "
            "sign the version with the values uploaded with it"
        )
    if request.detail and not expected.takes_detail:
        raise GovernanceError(f"a {request.action!r} request takes no detail")
    return Approval(owner=owner.name, request=request, signed=signed)


def _names(imports: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v[7:19]}..." for k, v in sorted(imports.items())) or "none"


def _check_fresh(approval: Approval, now: float, seen: Collection[str]) -> None:
    """Step 5 for a newly received signature: recent, and never seen before."""
    issued_at = approval.request.issued_at
    if issued_at > now + limits.MAX_CLOCK_SKEW_SECONDS:
        raise GovernanceError(
            f"the request of {approval.owner!r} is dated {issued_at - now:.0f} s in the future; "
            "check the signer's clock"
        )
    if issued_at < now - limits.MAX_REQUEST_AGE_SECONDS:
        raise GovernanceError(
            f"the request of {approval.owner!r} is {now - issued_at:.0f} s old; requests expire "
            f"after {limits.MAX_REQUEST_AGE_SECONDS} s, sign a new one"
        )
    if approval.request.request_id in seen:
        raise GovernanceError(
            f"request {approval.request.request_id} of {approval.owner!r} was already used "
            "(a replay); sign a new request"
        )


def _collect(
    signatures: Iterable[SignedRequest],
    pending: Iterable[SignedRequest],
    expected: _Expected,
    *,
    now: float,
    seen_request_ids: Collection[str],
) -> tuple[dict[str, Approval], frozenset[str]]:
    """Verify new and pending signatures; one approval per owner, and the new request ids."""
    by_owner: dict[str, Approval] = {}
    # Signatures accepted earlier were fresh when they arrived; only re-verify them.
    for signed in pending:
        approval = _verify(signed, expected)
        by_owner.setdefault(approval.owner, approval)
    new: dict[str, SignedRequest] = {}
    for signed in signatures:
        approval = _verify(signed, expected)
        request_id = approval.request.request_id
        if request_id in new:
            if new[request_id] == signed:
                continue  # the same signed request sent twice counts once
            raise GovernanceError(f"two different requests share the request id {request_id}")
        _check_fresh(approval, now, seen_request_ids)
        new[request_id] = signed
        by_owner.setdefault(approval.owner, approval)
    if not new:
        raise GovernanceError("no new signature: a request needs at least one owner's signature")
    return by_owner, frozenset(new)


def check_create(
    policy: Policy,
    signatures: Iterable[SignedRequest],
    *,
    now: float,
    seen_request_ids: Collection[str],
    imports: Mapping[str, str],
) -> VerifiedChange:
    """Verify that a new policy may be created: version 1, signed by one of its own owners.

    ``now`` is the CAS's clock (unix seconds); ``seen_request_ids`` the ids it has recorded;
    ``imports`` the :func:`~securetf.policy.import_digest` of each uploaded imported secret,
    which every signature must commit to.
    """
    # 1. A new policy starts at version 1 with no predecessor.
    if policy.version != 1 or policy.predecessor is not None:
        raise GovernanceError(
            f"a new policy has version 1 and predecessor null, not version {policy.version}"
        )
    # 2. Signatures by owners of the policy itself, over its hash, fresh and unseen.
    digest = policy_hash(policy)
    expected = _Expected(policy.governance, policy, digest, ("create",), imports)
    by_owner, request_ids = _collect(
        signatures, (), expected, now=now, seen_request_ids=seen_request_ids
    )
    return VerifiedChange(policy, digest, tuple(by_owner.values()), request_ids)


def check_update(
    current: Policy,
    current_hash: str,
    proposed: Policy,
    signatures: Iterable[SignedRequest],
    *,
    now: float,
    seen_request_ids: Collection[str],
    imports: Mapping[str, str],
    pending: Iterable[SignedRequest] = (),
) -> VerifiedChange:
    """Verify that ``proposed`` may replace ``current`` (whose stored hash is ``current_hash``).

    ``signatures`` are newly received (checked for freshness and replay); ``pending`` are
    those a previous call accepted and the CAS kept (re-verified, not re-dated); every one
    must commit to ``imports``, the digests of the imported values uploaded with the proposal
    (an approval of one value never counts for another). Raises
    :class:`ThresholdNotMet` when everything is valid but too few owners signed yet.
    """
    # 1. The caller's notion of the version in force is the policy it passed.
    if policy_hash(current) != current_hash:
        raise PolicyError("current_hash is not the hash of the current policy")
    # 2. Same policy, next version, chained to the version in force.
    if proposed.name != current.name:
        raise GovernanceError(
            f"an update cannot rename a policy: {current.name!r} cannot become {proposed.name!r}"
        )
    if proposed.version != current.version + 1:
        raise GovernanceError(
            f"the version in force is {current.version}, so the update must be version "
            f"{current.version + 1}, not {proposed.version}"
        )
    if proposed.predecessor != current_hash:
        raise GovernanceError(
            f"predecessor is {proposed.predecessor}, but the version in force hashes to "
            f"{current_hash}; the update must name it (someone else may have updated first)"
        )
    # 3. Signatures by owners of the CURRENT policy: the owners in force govern the change,
    #    so an update cannot appoint the owners that approve it.
    digest = policy_hash(proposed)
    expected = _Expected(current.governance, proposed, digest, ("update", "approve"), imports)
    by_owner, request_ids = _collect(
        signatures, pending, expected, now=now, seen_request_ids=seen_request_ids
    )
    # 4. Enough distinct owners.
    approvals = tuple(by_owner.values())
    needed = current.governance.update_threshold
    if len(by_owner) < needed:
        raise ThresholdNotMet(
            count=len(by_owner), needed=needed, approvals=approvals, request_ids=request_ids
        )
    return VerifiedChange(proposed, digest, approvals, request_ids)


def check_read(
    current: Policy,
    current_hash: str,
    signed: SignedRequest,
    *,
    action: Action,
    target: str = "",
    now: float,
    seen_request_ids: Collection[str],
) -> Approval:
    """Verify an owner's fresh, unreplayed request for one operation (``action`` on
    ``target``) on the version in force; a signature made for another operation fails."""
    if action in GOVERNANCE_ACTIONS:
        raise PolicyError(f"check_read verifies operations, not {action!r}")
    expected = _Expected(
        current.governance,
        current,
        current_hash,
        (action,),
        target=target,
        takes_detail=action == "register",
    )
    approval = _verify(signed, expected)
    _check_fresh(approval, now, seen_request_ids)
    return approval

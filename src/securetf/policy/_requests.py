"""Signed requests: an owner's signature that a given policy version should be in force,
or that one named operation on the version in force is wanted.

The signed bytes are a domain-separation prefix followed by the request's canonical JSON
(sorted keys, no whitespace)::

    b"securetf-policy-request-v2\\x00" + {"action":...,"detail":...,"imports":...,
                                          "issued_at":...,"policy":...,"policy_hash":...,
                                          "request_id":...,"target":...,"version":...}

A signature names exactly one operation: ``action`` and ``target`` (a secret's name for
``export``, a volume's name for ``register``; empty otherwise), so a signature made to read
the audit log can never export a secret. ``imports`` commits a ``create``, ``update`` or
``approve`` to the SHA-256 of every imported secret value uploaded with the version, so an
approval of one value never counts for another.

Verifiers check the signature over exactly the bytes received, then parse them, and insist
that they were canonical, so one request has exactly one byte form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from securetf.crypto import SigningKey, random_bytes, sha256
from securetf.errors import PolicyError
from securetf.policy import limits
from securetf.policy._canonical import canonical_json
from securetf.policy._errors import policy_error
from securetf.policy._types import Digest, Name, PolicyModel

SIGNING_CONTEXT = b"securetf-policy-request-v2\x00"
"""Prefix of every signed message, so a request signature can never pass for another one."""

Action = Literal["create", "update", "approve", "audit", "export", "register", "show", "history"]
GOVERNANCE_ACTIONS: tuple[Action, ...] = ("create", "update", "approve")
"""Actions that change which version is in force (they carry ``imports``)."""

ImportDigest = Digest  # the SHA-256 of an imported value, as policies write digests
DetailValue = Annotated[StrictStr, Field(max_length=limits.MAX_TEXT_LENGTH)] | StrictInt


def import_digest(value: bytes) -> str:
    """How a signed request names an imported secret's value: ``sha256:<hex>``."""
    return "sha256:" + sha256(value).hex()


class Request(PolicyModel):
    """What an owner signs. ``create`` and ``update`` propose a version, ``approve`` seconds
    a pending one; ``audit``, ``export``, ``register``, ``show`` and ``history`` ask for one
    operation on the version in force (read the audit log, export the secret ``target``,
    register a tag of the volume ``target`` with ``detail`` ``{"tag": ..., "version": ...}``,
    read the policy's YAML, read who approved each version)."""

    action: Action
    policy: Name
    """The policy's name."""
    version: Annotated[StrictInt, Field(ge=1)]
    policy_hash: Digest
    """:func:`~securetf.policy.policy_hash` of the version signed for."""
    request_id: Annotated[StrictStr, Field(pattern=f"^[0-9a-f]{{{2 * limits.REQUEST_ID_BYTES}}}$")]
    """Random, single-use: the CAS refuses a request id it has seen before."""
    issued_at: Annotated[StrictInt, Field(ge=0)]
    """Unix seconds; the request expires :data:`limits.MAX_REQUEST_AGE_SECONDS` later."""
    target: Annotated[StrictStr, Field(max_length=limits.MAX_NAME_LENGTH)] = ""
    """What the operation acts on: a secret (``export``), a volume (``register``)."""
    imports: Annotated[dict[Name, ImportDigest], Field(max_length=limits.MAX_SECRETS)] = Field(
        default_factory=dict
    )
    """:func:`import_digest` of each imported secret uploaded with this version."""
    detail: Annotated[dict[Name, DetailValue], Field(max_length=8)] = Field(default_factory=dict)
    """The operation's arguments (``register``: the tag and version)."""


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    signer: Annotated[StrictStr, Field(max_length=200)]
    body: Annotated[StrictStr, Field(max_length=2 * limits.MAX_REQUEST_BYTES)]
    signature: Annotated[StrictStr, Field(max_length=200)]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PolicyError(f"the signed request's {what} is not valid base64") from None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request body exactly as signed, its Ed25519 signature, and the signer's public key.

    Nothing in here is trusted until :func:`~securetf.policy.check_create` or
    :func:`~securetf.policy.check_update` has verified it.
    """

    signer: str
    """The signer's public key, ``ed25519:...``: it must be an owner's."""
    body: bytes
    signature: bytes

    def unverified_request(self) -> Request:
        """Parse the body without checking the signature (for display and routing only)."""
        if len(self.body) > limits.MAX_REQUEST_BYTES:
            raise PolicyError(f"a signed request body is at most {limits.MAX_REQUEST_BYTES} bytes")
        try:
            request = Request.model_validate_json(self.body)
        except ValidationError as exc:
            raise policy_error(exc, what="signed request") from None
        if canonical_json(request.model_dump(mode="json")) != self.body:
            raise PolicyError("the signed request body is not in canonical form")
        return request

    def to_json(self) -> bytes:
        """The wire form: ``{"body": b64, "signature": b64, "signer": "ed25519:..."}``."""
        return canonical_json(
            {
                "body": base64.b64encode(self.body).decode("ascii"),
                "signature": base64.b64encode(self.signature).decode("ascii"),
                "signer": self.signer,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> SignedRequest:
        """Parse the wire form (structure only: nothing is verified here)."""
        try:
            envelope = _Envelope.model_validate_json(data)
        except ValidationError as exc:
            raise policy_error(exc, what="signed request") from None
        return cls(
            signer=envelope.signer,
            body=_b64decode(envelope.body, "body"),
            signature=_b64decode(envelope.signature, "signature"),
        )


def sign_request(
    key: SigningKey,
    *,
    action: Action,
    policy: str,
    version: int,
    policy_hash: str,
    issued_at: int,
    request_id: str | None = None,
    target: str = "",
    imports: Mapping[str, str] | None = None,
    detail: Mapping[str, str | int] | None = None,
) -> SignedRequest:
    """Sign ``action`` on ``policy`` at ``version`` with ``policy_hash`` (see :class:`Request`).

    ``issued_at`` is the signer's clock in unix seconds; ``request_id`` is fresh random unless
    given (tests pass one to be deterministic); ``imports`` maps imported secrets uploaded with
    a proposal to :func:`import_digest` of their values.
    """
    if request_id is None:
        request_id = random_bytes(limits.REQUEST_ID_BYTES).hex()
    try:
        request = Request(
            action=action,
            policy=policy,
            version=version,
            policy_hash=policy_hash,
            request_id=request_id,
            issued_at=issued_at,
            target=target,
            imports=dict(imports or {}),
            detail=dict(detail or {}),
        )
    except ValidationError as exc:
        raise policy_error(exc, what="signed request") from None
    body = canonical_json(request.model_dump(mode="json"))
    return SignedRequest(
        signer=key.verify_key().to_text(),
        body=body,
        signature=key.sign(SIGNING_CONTEXT + body),
    )

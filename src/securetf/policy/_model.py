"""The policy: who governs it, which TEEs it trusts, its secrets, volumes and services."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, StrictStr, ValidationError, model_validator

from securetf.crypto import VerifyKey
from securetf.errors import UsageError
from securetf.policy import limits
from securetf.policy._errors import policy_error
from securetf.policy._references import reference_problems
from securetf.policy._secrets import Secret
from securetf.policy._services import Service
from securetf.policy._tee import Tee
from securetf.policy._types import Digest, Name, OwnerName, PolicyModel
from securetf.policy._yaml import load_document


def _public_key(text: str) -> str:
    try:
        # The canonical text form, so that the same key always hashes the same.
        return VerifyKey.from_text(text).to_text()
    except UsageError as exc:
        raise ValueError(str(exc)) from None


class Owner(PolicyModel):
    name: OwnerName
    public_key: Annotated[StrictStr, Field(max_length=200), AfterValidator(_public_key)]
    """``ed25519:<base64 SPKI DER>``, as ``securetf owner keygen`` prints it."""

    def verify_key(self) -> VerifyKey:
        return VerifyKey.from_text(self.public_key)


class Governance(PolicyModel):
    owners: Annotated[tuple[Owner, ...], Field(min_length=1, max_length=limits.MAX_OWNERS)]
    """Who may update this policy and read its audit trail."""
    update_threshold: Annotated[StrictInt, Field(ge=1)]
    """Signatures of distinct current owners that an update needs."""

    @model_validator(mode="after")
    def _consistent(self) -> Governance:
        names = [owner.name for owner in self.owners]
        keys = [owner.public_key for owner in self.owners]
        for index, owner in enumerate(self.owners):
            if owner.name in names[:index]:
                raise ValueError(f"owners: the name {owner.name!r} appears twice")
            if owner.public_key in keys[:index]:
                raise ValueError(f"owners: {owner.name!r} has the same public key as another")
        if self.update_threshold > len(self.owners):
            raise ValueError(
                f"update_threshold is {self.update_threshold} but there are only "
                f"{len(self.owners)} owners; no update could ever be approved"
            )
        return self

    def owner_for(self, public_key: str) -> Owner | None:
        """The owner holding ``public_key`` (any text form of it), if any."""
        try:
            canonical = _public_key(public_key)
        except ValueError:
            return None
        return next((o for o in self.owners if o.public_key == canonical), None)


class Volume(PolicyModel):
    key: Name
    """The secret (of kind volume-key) that the volume is sealed with."""
    rollback: Literal["protected", "none"] = "protected"
    """``protected``: the CAS tracks the volume's tag and refuses older states."""


class CaSettings(PolicyModel):
    """The policy's certificate authority, which issues its instances' certificates."""

    generation: Annotated[StrictInt, Field(ge=1)] = 1
    """Raise it in an update to rotate the CA: instances provisioned from then on get
    certificates from a new CA. It never goes down."""
    overlap_seconds: Annotated[StrictInt, Field(ge=0, le=limits.MAX_CA_OVERLAP_SECONDS)] = 86400
    """How long after a rotation the previous CA stays trusted: instances and clients get
    both CAs until then, and the previous CA's certificate ends then."""


class Policy(PolicyModel):
    """A validated policy. Build one from untrusted bytes with :meth:`from_yaml`."""

    name: Name
    """Unique at the CAS; a DNS label."""
    version: Annotated[StrictInt, Field(ge=1)]
    """1 for a new policy, and one more on every update."""
    predecessor: Digest | None = None
    """null for version 1; from version 2 on, the hash of the version this one replaces."""
    governance: Governance
    tee: Tee
    secrets: Annotated[dict[Name, Secret], Field(max_length=limits.MAX_SECRETS)] = Field(
        default_factory=dict
    )
    volumes: Annotated[dict[Name, Volume], Field(max_length=limits.MAX_VOLUMES)] = Field(
        default_factory=dict
    )
    services: Annotated[dict[Name, Service], Field(min_length=1, max_length=limits.MAX_SERVICES)]
    transparency: Literal["full", "hashes"] = "full"
    """What the CAS's public transparency log shows of this policy: ``full`` (its name,
    owners' keys, threshold, reference values; its instances' services) or ``hashes``
    (the SHA-256 of each name, the policy's hash and version only; docs/log.md)."""
    ca: CaSettings = Field(
        default_factory=CaSettings, exclude_if=lambda value: value == CaSettings()
    )
    """Rotation of the policy's CA (docs/policy.md, "CA rotation")."""

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems: list[str] = []
        if self.version == 1 and self.predecessor is not None:
            problems.append("predecessor: must be null for version 1 (a new policy)")
        if self.version > 1 and self.predecessor is None:
            problems.append(
                f"predecessor: version {self.version} must name the hash of version "
                f"{self.version - 1} ('sha256:...', shown by securetf policy show --json), "
                "or leave out both version and predecessor: securetf policy apply fills "
                "them in"
            )
        volume_keys = {name: volume.key for name, volume in self.volumes.items()}
        problems.extend(reference_problems(self.secrets, volume_keys, self.services))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @classmethod
    def from_yaml(cls, data: bytes) -> Policy:
        """Parse and validate untrusted policy YAML; raise :class:`PolicyError` on any flaw."""
        document = load_document(data)
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise policy_error(exc) from None

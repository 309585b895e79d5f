"""The kinds of secret a policy can ask the CAS to import or generate."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from securetf.policy import limits
from securetf.policy._types import PolicyModel, SetOf, Text


class VolumeKeySecret(PolicyModel):
    """The key of a sealed volume (32 bytes)."""

    kind: Literal["volume-key"]
    source: Literal["imported", "generated"]
    """``imported``: an owner uploads it with the policy; ``generated``: the CAS makes it."""
    export_to_owners: StrictBool = False
    """Whether owners may download it (``securetf secret get``), e.g. an output volume's key."""
    previous_readable_seconds: Annotated[
        StrictInt, Field(ge=0, le=limits.MAX_PREVIOUS_SECRET_SECONDS)
    ] = Field(default=0, exclude_if=lambda value: value == 0)
    """Imported keys only: a policy update may upload a new value (a new version), and the
    previous value stays readable to owners this long (``securetf secret get --previous``),
    e.g. to re-seal volumes. 0: the value can never be replaced."""

    @model_validator(mode="after")
    def _imported_only(self) -> VolumeKeySecret:
        if self.previous_readable_seconds and self.source != "imported":
            raise ValueError(
                "previous_readable_seconds applies to imported keys only (a generated key "
                "is never replaced)"
            )
        return self


class RandomSecret(PolicyModel):
    """Random bytes generated inside the CAS and never shown to anyone."""

    kind: Literal["random"]
    bytes: Annotated[StrictInt, Field(ge=1, le=limits.MAX_RANDOM_BYTES)]
    """How many random bytes."""
    encoding: Literal["hex", "base64", "raw"] = "hex"
    """How the bytes are written where the secret is used; ``raw`` fits only in files."""


class X509Secret(PolicyModel):
    """A key pair and a certificate for it, issued by the policy's CA."""

    kind: Literal["x509"]
    common_name: Annotated[Text, Field(min_length=1, max_length=64)]
    usage: Annotated[tuple[Literal["server", "client"], ...], Field(min_length=1), SetOf]
    """Extended key usages: ``server``, ``client`` or both."""
    valid_days: Annotated[StrictInt, Field(ge=1, le=limits.MAX_CERT_VALID_DAYS)] = 7
    """Lifetime of each certificate issued for it."""


Secret = Annotated[VolumeKeySecret | RandomSecret | X509Secret, Field(discriminator="kind")]
SECRET_KINDS: tuple[str, ...] = ("volume-key", "random", "x509")


def is_binary(secret: Secret) -> bool:
    """Whether the secret's value is raw bytes, which only a file (not text) can hold."""
    return isinstance(secret, VolumeKeySecret) or (
        isinstance(secret, RandomSecret) and secret.encoding == "raw"
    )

"""What a service is: its measured code, command, mounts, environment, files and network."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, model_validator

from securetf.errors import PolicyError
from securetf.policy import limits
from securetf.policy._templates import parse_template
from securetf.policy._types import (
    AbsolutePath,
    Digest,
    Egress,
    EnvName,
    FileText,
    Name,
    PolicyModel,
    Port,
    SetOf,
    Text,
)


def _template(value: str) -> str:
    try:
        parse_template(value)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


Template = Annotated[Text, AfterValidator(_template)]
FileTemplate = Annotated[FileText, AfterValidator(_template)]
_List = Field(max_length=limits.MAX_LIST_ITEMS)
_Map = Field(max_length=limits.MAX_MAP_ITEMS)


class Mount(PolicyModel):
    volume: Name
    """A volume defined under ``volumes``."""
    path: AbsolutePath
    """Where the program sees the volume's files."""
    mode: Literal["ro", "rw"] = "ro"
    """``rw`` lets the service commit new states of the volume."""


class CodeVolume(PolicyModel):
    """An application shipped inside a sealed volume, mounted read-only and measured."""

    volume: Name
    path: AbsolutePath


class Network(PolicyModel):
    """Everything the service may reach or be reached by; empty means nothing."""

    peers: Annotated[tuple[Name, ...], _List, SetOf] = ()
    """Services whose instances this one talks to, over mutual TLS."""
    listen: Annotated[tuple[Port, ...], _List, SetOf] = ()
    """Ports that instances of the peer services may connect to."""
    egress: Annotated[tuple[Egress, ...], _List, SetOf] = ()
    """Destinations outside the policy: ``host:port``, ``cidr:port`` or ``[v6cidr]:port``."""
    public: Annotated[tuple[Port, ...], _List, SetOf] = ()
    """Ports open to clients outside the policy, over TLS with the policy CA's certificate."""


class Service(PolicyModel):
    measurement: Annotated[
        tuple[Digest, ...],
        BeforeValidator(_one_or_many, json_schema_input_type=Digest | list[Digest]),
        Field(min_length=1, max_length=limits.MAX_MEASUREMENTS),
        SetOf,
    ]
    """The allowed measurement(s): one ``sha256:...`` or a list of them."""
    command: Annotated[tuple[Text, ...], Field(min_length=1, max_length=limits.MAX_LIST_ITEMS)]
    """The program and its arguments (quote numbers: ``"5"``)."""
    instances: Annotated[StrictInt, Field(ge=1, le=limits.MAX_INSTANCES)] = 1
    mounts: Annotated[tuple[Mount, ...], _List] = ()
    environment: Annotated[dict[EnvName, Template], _Map] = Field(default_factory=dict)
    """Environment variables; values may hold ``{{ secrets.NAME }}`` templates."""
    files: Annotated[dict[AbsolutePath, FileTemplate], _Map] = Field(default_factory=dict)
    """Files placed in memory inside the TEE; contents may hold templates."""
    network: Network = Field(default_factory=Network)
    code: CodeVolume | None = None
    """Where the application comes from when it is shipped in a sealed volume."""

    @model_validator(mode="after")
    def _distinct_paths(self) -> Service:
        paths = [mount.path for mount in self.mounts]
        if self.code is not None:
            paths.append(self.code.path)
        for index, path in enumerate(paths):
            if path in paths[:index]:
                raise ValueError(f"two mounts (or a mount and code) share the path {path!r}")
        return self

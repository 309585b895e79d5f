"""Validated scalar types shared by the policy models.

Scalars are strict (a YAML ``5`` is not the string ``"5"``), free text refuses NUL and
unpaired surrogates (they break canonical UTF-8), and set-like lists come out sorted so
that their order in the file does not change the policy's hash.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
)

from securetf.policy import limits

_LABEL = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_DIGEST = r"^sha256:[0-9a-f]{64}$"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _plain_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


Text = Annotated[StrictStr, Field(max_length=limits.MAX_TEXT_LENGTH), AfterValidator(_plain_text)]
"""Free-form text: any printable string up to the text limit."""

FileText = Annotated[
    StrictStr, Field(max_length=limits.MAX_FILE_LENGTH), AfterValidator(_plain_text)
]

Name = Annotated[
    StrictStr,
    Field(min_length=1, max_length=limits.MAX_NAME_LENGTH, pattern=_LABEL),
]
"""A DNS label: lower-case letters, digits and inner hyphens (``breast-cancer-training``)."""

NameText = TypeAdapter(Name, config=ConfigDict(defer_build=True))
"""Validates one name outside a model (the volume of ``VOLUME/PATH``)."""

OwnerName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"),
]
"""A person or team: letters, digits and ``. _ @ + -`` (an e-mail address fits)."""

Digest = Annotated[StrictStr, Field(pattern=_DIGEST)]
"""``sha256:`` and 64 lower-case hex digits."""

Hex32 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
"""32 bytes as 64 lower-case hex digits (MRENCLAVE, MRSIGNER, SNP HOST_DATA)."""

Hex48 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{96}$")]
"""48 bytes as 96 lower-case hex digits (MRTD, RTMRs, the SNP launch measurement)."""

AdvisoryId = Annotated[
    StrictStr, Field(min_length=3, max_length=64, pattern=r"^[A-Z0-9]+(-[A-Z0-9]+)+$")
]
"""A vendor security advisory id such as ``INTEL-SA-00615``."""

EnvName = Annotated[
    StrictStr, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]

Port = Annotated[StrictInt, Field(ge=1, le=65535)]


def _absolute_path(value: str) -> str:
    _plain_text(value)
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (start with '/'), got {value!r}")
    if value == "/":
        raise ValueError("must not be the root directory '/'")
    if posixpath.normpath(value) != value or "//" in value:
        raise ValueError(
            f"must be a normalized path (no '.', '..', '//' or trailing '/'), got {value!r}"
        )
    return value


AbsolutePath = Annotated[
    StrictStr,
    Field(max_length=limits.MAX_TEXT_LENGTH, pattern="^/"),
    AfterValidator(_absolute_path),
]

AbsolutePathText = TypeAdapter(AbsolutePath, config=ConfigDict(defer_build=True))
"""Validates one absolute path outside a model (the entries of a ``PATH``)."""


def _egress(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or port != str(int(port)):
        raise ValueError(f"must be 'host:port' or 'cidr:port' with a port 1-65535, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"only IPv6 addresses go in brackets, got {value!r}")
    elif ":" in host:
        raise ValueError(
            f"write an IPv6 address in brackets ('[2001:db8::/32]:443'), got {value!r}"
        )
    if _HOSTNAME.match(host):
        return value
    try:
        network = ipaddress.ip_network(host, strict=True)
    except ValueError:
        raise ValueError(
            f"{host!r} is neither a lower-case host name nor an IP network such as 10.0.0.0/8"
        ) from None
    if str(network) != host and str(network.network_address) != host:
        raise ValueError(f"write the network {host!r} in its short form {network}")
    return value


Egress = Annotated[StrictStr, Field(max_length=300), AfterValidator(_egress)]
"""An allowed destination: ``host:port``, ``a.b.c.d/nn:port`` or ``[v6/nn]:port``."""

_S = TypeVar("_S", str, int)


def sorted_set(items: tuple[_S, ...]) -> tuple[_S, ...]:
    """A set-like list: no repeats, and sorted so that the hash ignores its written order."""
    for index, item in enumerate(items):
        if item in items[:index]:
            raise ValueError(f"lists {item!r} more than once")
    return tuple(sorted(items))


SetOf = AfterValidator(sorted_set)
"""Marks a tuple field as a set: repeats refused, items sorted."""


class PolicyModel(BaseModel):
    """Base of every policy model: unknown fields are refused, objects are immutable.

    Each model's validator is built when it is first used, not on import (``defer_build``):
    the runtime uses a few of the policy's models and should not pay for the others. The
    attribute docstrings describe the fields in the JSON Schema (:mod:`._schema`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(*parts: str | int) -> str:
    """A key path as users read it: ``services.train.mounts[0]``, ``files["/etc/x"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out

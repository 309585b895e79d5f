"""Errors of the policy layer, and the translation of pydantic's into ours."""

from __future__ import annotations

from pydantic import ValidationError

from securetf.errors import PolicyError
from securetf.policy._secrets import SECRET_KINDS
from securetf.policy._services import OUTPUT_TAGS
from securetf.policy._types import dotted

_MAX_LISTED = 20


class GovernanceError(PolicyError):
    """A create or update request breaks the governance rules (signer, version, replay...)."""


def _path(loc: tuple[int | str, ...]) -> str:
    # A tagged union adds the tag ('random') to the path; the user never wrote it.
    if len(loc) > 2 and loc[0] == "secrets" and loc[2] in SECRET_KINDS:
        loc = loc[:2] + loc[3:]
    if len(loc) > 3 and loc[0] == "services" and loc[2] == "output" and loc[3] in OUTPUT_TAGS:
        loc = loc[:3] + loc[4:]
    return dotted(*loc) or "policy"


def _message(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    return message.removeprefix("Value error, ")


def policy_error(exc: ValidationError, *, what: str = "policy") -> PolicyError:
    """One :class:`PolicyError` listing every problem with the key path it sits at."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        path = _path(tuple(error["loc"]))
        for line in _message(error["type"], error["msg"]).splitlines():
            lines.append(f"  - {line}" if path == "policy" else f"  - {path}: {line}")
    shown = lines[:_MAX_LISTED]
    if len(lines) > _MAX_LISTED:
        shown.append(f"  ... and {len(lines) - _MAX_LISTED} more")
    return PolicyError(f"invalid {what}:\n" + "\n".join(shown))

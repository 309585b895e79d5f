"""The next version of a policy as an owner edits it: ``version`` and ``predecessor``
filled in from the version in force, and what the update changes, for a person to read.

Pure: the caller fetches the version in force; the bytes returned are the bytes signed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from securetf.errors import PolicyError
from securetf.policy._model import Policy
from securetf.policy._yaml import load_document

_NAME_LINE = re.compile(rb"^name\s*:", re.MULTILINE)


@dataclass(frozen=True)
class VersionFields:
    """What a policy file says at its top level about which policy and version it is."""

    name: str | None
    version: int | None
    has_version: bool
    has_predecessor: bool


def version_fields(yaml: bytes) -> VersionFields:
    """Read ``name``, ``version`` and whether ``predecessor`` is there, before validation
    (a file that leaves version out is not a valid policy yet)."""
    document = load_document(yaml)
    name, version = document.get("name"), document.get("version")
    return VersionFields(
        name=name if isinstance(name, str) else None,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        has_version="version" in document,
        has_predecessor="predecessor" in document,
    )


def fill_version(yaml: bytes, *, version: int, predecessor: str | None) -> bytes:
    """``yaml`` with the ``version`` and ``predecessor`` it leaves out written in.

    The lines go just before the top-level ``name:`` line, so the owner's text (comments,
    order, style) stays as it was; the result is what gets signed, and it must read back
    with exactly these values.
    """
    fields = version_fields(yaml)
    lines = b""
    if not fields.has_version:
        lines += f"version: {version}  # filled in by securetf policy apply\n".encode()
    if not fields.has_predecessor:
        value = json.dumps(predecessor) if predecessor is not None else "null"
        lines += f"predecessor: {value}\n".encode()
    if not lines:
        return yaml
    match = _NAME_LINE.search(yaml)
    if match is None:
        raise PolicyError(
            "the policy has no top-level 'name:' line to put version and predecessor beside: "
            f"add 'version: {version}' and 'predecessor: {predecessor or 'null'}' yourself"
        )
    filled = yaml[: match.start()] + lines + yaml[match.start() :]
    document = load_document(filled)
    if document.get("version") != version or document.get("predecessor") != predecessor:
        raise PolicyError(
            "could not write version and predecessor into this policy's YAML: add "
            f"'version: {version}' and 'predecessor: {predecessor or 'null'}' yourself"
        )
    return filled


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value) if value else "(none)"  # measurements, commands, sets
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


#: Values that add nothing when a key appears or goes: empty, off, absent.
_UNSET: tuple[Any, ...] = ([], {}, None, False)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    """Dotted paths to the leaves of ``value`` (lists are leaves: they read as one value)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(f"{prefix}.{key}", item))
        return out
    return {prefix: value}


def _fields(section: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a = _flat(section, old) if old else {}
    b = _flat(section, new) if new else {}
    lines = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            if a[path] not in _UNSET:
                lines.append(f"  - {path}: {_text(a[path])}")
        elif path not in a:
            if b[path] not in _UNSET:  # a default left as it is says nothing
                lines.append(f"  + {path}: {_text(b[path])}")
        elif a[path] != b[path]:
            lines.append(f"  ~ {path}: {_text(a[path])} -> {_text(b[path])}")
    return lines


def _named(section: str, what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Entries of a mapping added, removed, or changed field by field."""
    lines = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            lines.append(f"- {what} {name} removed")
        elif name not in old:
            lines.append(f"+ {what} {name} added")
            lines.extend(_fields(f"{section}.{name}", {}, new[name]))
        elif old[name] != new[name]:
            lines.append(f"~ {what} {name} changed")
            lines.extend(_fields(f"{section}.{name}", old[name], new[name]))
    return lines


def policy_changes(old: Policy | None, new: Policy) -> list[str]:
    """What ``new`` changes from ``old`` (None: a new policy), one line per change, for a
    person: services, measurements, secrets, volumes, owners, the TEE, the threshold.

    Lines start with ``+`` (added), ``-`` (removed) or ``~`` (changed); an empty list means
    the two versions mean the same. Secret values are never in a policy, so never here.
    """
    was: dict[str, Any] = old.model_dump(mode="json") if old is not None else {}
    now: dict[str, Any] = new.model_dump(mode="json")
    lines: list[str] = []
    old_owners = {o["name"]: o for o in was.get("governance", {}).get("owners", [])}
    new_owners = {o["name"]: o for o in now["governance"]["owners"]}
    lines += _named("governance.owners", "owner", old_owners, new_owners)
    old_threshold = was.get("governance", {}).get("update_threshold")
    threshold = now["governance"]["update_threshold"]
    if old_threshold is None:
        lines.append(f"+ update_threshold: {threshold}")
    elif old_threshold != threshold:
        lines.append(f"~ update_threshold: {old_threshold} -> {threshold}")
    lines += [line.lstrip() for line in _fields("tee", was.get("tee", {}), now["tee"])]
    lines += _named("secrets", "secret", was.get("secrets", {}), now["secrets"])
    lines += _named("volumes", "volume", was.get("volumes", {}), now["volumes"])
    lines += _named("services", "service", was.get("services", {}), now["services"])
    return lines

"""The decision a client takes on a CAS answer and the log entry it names: pure, no I/O.

An answer a decision rests on (the policy in force, the CAS's identity, an instance's
certificate) names the index of its entry in the CAS's transparency log. The entry was
proven to be in a checkpoint consistent with every one this client saw before; here it
must also say what the answer says, field by field, or the answer is refused: an answer
about something the public cannot see in the log is no answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from securetf.log import ProofError
from securetf.protocol.logentry import published

__all__ = ["NotLoggedError", "no_entry", "require_entry"]

_ADVICE = (
    "the CAS answered something the public cannot audit; nothing was trusted. Keep the "
    "checkpoint files in $SECURETF_HOME/cas-pins as evidence"
)


class NotLoggedError(ProofError):
    """A CAS answer whose content is not in the CAS's transparency log."""


def no_entry(what: str) -> str:
    """The refusal of an answer that names no log entry."""
    return f"the CAS's answer about {what} names no log entry: {_ADVICE}"


def require_entry(what: str, index: int, entry: bytes, expect: Mapping[str, object]) -> None:
    """Raise :class:`NotLoggedError` unless the proven ``entry`` (at ``index``) is a JSON
    object with every field of ``expect`` equal.

    1. The entry is a JSON object.
    2. Each expected field is there with the expected value (a lookalike entry of another
       policy, version or certificate is refused).
    """
    advice = _ADVICE
    # A ``transparency: hashes`` policy's entries hold its names as hashes.
    try:
        value = json.loads(entry)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise NotLoggedError(f"log entry {index} ({what}) is not a JSON object: {advice}")
    mode = str(value.get("transparency", "full"))
    kind = str(expect.get("type", ""))
    for field, expected in expect.items():
        if field not in value or value[field] != published(kind, field, expected, mode):
            raise NotLoggedError(
                f"log entry {index} does not record the CAS's answer about {what} "
                f"(its {field!r} differs): {advice}"
            )

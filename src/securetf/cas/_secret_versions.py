"""The previous value of a replaced imported secret, readable to owners for a while.

A policy update may upload a new value for an imported key whose spec declares
``previous_readable_seconds``. The value it replaces is stored (sealed like any secret,
bound to its row) under the name ``<name>@previous``, which no policy name can take (names
are DNS labels), prefixed with the time until which owners may read it::

    stored = big-endian IEEE double (readable until, unix seconds) || previous value

Instances never get it: they receive the value in force. Owners read it with an ``export``
request whose target is ``<name>@previous`` (``securetf secret get NAME --previous``).
"""

from __future__ import annotations

import datetime
import struct

from securetf.errors import NotFoundError

__all__ = ["PREVIOUS", "keep_previous", "open_previous", "previous_name"]

PREVIOUS = "@previous"
_UNTIL = struct.Struct(">d")


def previous_name(name: str) -> str:
    return name + PREVIOUS


def keep_previous(value: bytes, until: float) -> bytes:
    return _UNTIL.pack(until) + value


def open_previous(stored: bytes, name: str, *, now: float) -> bytes:
    """The previous value of ``name`` if it is still readable at ``now``."""
    (until,) = _UNTIL.unpack_from(stored)
    if now >= until:
        when = datetime.datetime.fromtimestamp(until, tz=datetime.UTC).isoformat(timespec="seconds")
        raise NotFoundError(
            f"the previous value of secret {name!r} was readable until {when}; it is gone"
        )
    return stored[_UNTIL.size :]

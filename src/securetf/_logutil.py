"""Loud warnings that stay readable: shown at once, then at most once a minute per kind."""

from __future__ import annotations

import logging
import threading
import time

#: Seconds between two repeats of the same loud warning.
REPEAT_SECONDS = 60.0

_last: dict[str, float] = {}
_lock = threading.Lock()


def warn_loudly(logger: logging.Logger, message: str, *args: object) -> None:
    """Log ``message`` as a warning unless the same one was logged in the last minute.

    A server that accepts simulated evidence thousands of times a second says so every
    minute, instead of flooding (and serializing on) its log.
    """
    text = message % args if args else message
    now = time.monotonic()
    with _lock:
        if now - _last.get(text, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return
        _last[text] = now
    logger.warning("%s", text)

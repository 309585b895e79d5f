"""What the audit log keeps of requests the CAS refused before knowing who sent them.

Anyone can send a bad request, and a refusal's reason often repeats what was sent (a name,
a field of the evidence). So a refusal's entry keeps a short excerpt of each string, with
control characters escaped, and only the first few refusals per source (client address)
and window become entries; the rest are counted, and the source's next entry says how
many were left out. Both limits are :class:`securetf.cas.CasSettings`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RefusalGate", "excerpt", "excerpt_detail"]

_log = logging.getLogger(__name__)

_INT_BOUND = 2**63  # the database's integers; a larger number is kept as text, cut


def excerpt(text: str, limit: int) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\u202e``,
    a lone surrogate too), cut to at most ``limit`` characters plus a note of its length."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        if size + len(piece) > limit:
            return "".join(out) + f"... [{len(text)} characters]"
        out.append(piece)
        size += len(piece)
    return "".join(out)


def excerpt_detail(value: Any, limit: int) -> Any:
    """``value`` (JSON data) with each string, key and huge number reduced by :func:`excerpt`."""
    if isinstance(value, str):
        return excerpt(value, limit)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_BOUND:
        return excerpt(str(value), limit)
    if isinstance(value, Mapping):
        return {excerpt(str(k), limit): excerpt_detail(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [excerpt_detail(v, limit) for v in value]
    return value


@dataclass
class _Window:
    start: float
    written: int = 0
    suppressed: int = 0  # refusals not written and not yet reported in an entry


class RefusalGate:
    """Decides which refusals become audit entries: ``per_source`` per ``window`` seconds
    and source, for at most ``max_sources`` sources at once (memory stays bounded when one
    caller has many addresses). Thread-safe; forgets everything at a restart."""

    def __init__(
        self, *, per_source: int, window: float, max_sources: int, clock: Callable[[], float]
    ) -> None:
        self._per_source = per_source
        self._window = window
        self._max_sources = max_sources
        self._clock = clock
        self._sources: dict[str, _Window] = {}
        self._others = 0  # refusals of sources not tracked, not yet reported
        self._next_evict = 0.0
        self._lock = threading.Lock()

    def admit(self, source: str) -> dict[str, int] | None:
        """None if this refusal is only counted; else the counts its entry must carry:
        ``suppressed`` (this source's refusals left out before it) and
        ``suppressed_other_sources`` (refusals of sources the gate had no room for)."""
        now = self._clock()
        with self._lock:
            window = self._track(source, now)
            if window is None:
                self._others += 1
                self._warn_first(self._others, f"refusals from over {self._max_sources} sources")
                return None
            if window.written >= self._per_source:
                window.suppressed += 1
                self._warn_first(window.suppressed, f"over {self._per_source} from {source}")
                return None
            window.written += 1
            counts = {"suppressed": window.suppressed, "suppressed_other_sources": self._others}
            window.suppressed = self._others = 0
            return {k: v for k, v in counts.items() if v}

    def give_back(self, source: str, counts: dict[str, int]) -> None:
        """An admitted refusal that was not written after all (the replicas' shared limit
        was reached): it and the counts it was to carry are counted again."""
        with self._lock:
            window = self._sources.get(source)
            carried = counts.get("suppressed", 0) + 1
            if window is None:
                self._others += carried
            else:
                window.suppressed += carried
            self._others += counts.get("suppressed_other_sources", 0)

    def _warn_first(self, count: int, what: str) -> None:
        """Log the first refusal left out of a run, not each (a flood would fill the log)."""
        if count == 1:
            _log.warning(
                "refusals: %s in %.0f s; the rest are counted, not audited", what, self._window
            )

    def _track(self, source: str, now: float) -> _Window | None:
        window = self._sources.get(source)
        if window is not None:
            if now - window.start >= self._window:
                window.start, window.written = now, 0
            return window
        if len(self._sources) >= self._max_sources and now >= self._next_evict:
            self._evict(now)
        if len(self._sources) >= self._max_sources:
            return None
        window = self._sources[source] = _Window(now)
        return window

    def _evict(self, now: float) -> None:
        """Forget the sources whose window ended; their unreported counts become others'."""
        for source, window in list(self._sources.items()):
            if now - window.start >= self._window:
                self._others += window.suppressed
                del self._sources[source]
        starts = [w.start for w in self._sources.values()]
        self._next_evict = (min(starts) if starts else now) + self._window

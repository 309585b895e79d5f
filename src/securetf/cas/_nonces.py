"""Provisioning nonces: single use, short-lived, and gone with the process.

A nonce is ``random(16) || expires_at(u64) || HMAC-SHA256(book_key, first 24 bytes)[:16]``.
The book's key lives only in memory and is new at every start, so a restart invalidates
every outstanding nonce (no replay across a crash); within a run, a taken nonce is
remembered until it expires. No database write is needed per nonce.
"""

from __future__ import annotations

import hmac
import struct
import threading
from collections.abc import Callable

from securetf.crypto import constant_time_equal, random_bytes

NONCE_SIZE = 40
_EXPIRY = struct.Struct(">Q")


class NonceBook:
    def __init__(self, *, ttl: float, clock: Callable[[], float]) -> None:
        self._key = random_bytes(32)
        self._ttl = ttl
        self._clock = clock
        self._taken: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, "sha256").digest()[:16]

    def issue(self) -> tuple[bytes, float]:
        expires = self._clock() + self._ttl
        body = random_bytes(16) + _EXPIRY.pack(int(expires * 1000))
        return body + self._mac(body), expires

    def take(self, nonce: bytes) -> bool:
        """True once for a nonce this book issued and that has not expired."""
        if len(nonce) != NONCE_SIZE:
            return False
        body, tag = nonce[:24], nonce[24:]
        if not constant_time_equal(self._mac(body), tag):
            return False
        expires = _EXPIRY.unpack(body[16:])[0] / 1000
        now = self._clock()
        if expires < now:
            return False
        with self._lock:
            if now >= self._next_purge:
                self._taken = {n: e for n, e in self._taken.items() if e >= now}
                self._next_purge = now + self._ttl
            if nonce in self._taken:
                return False
            self._taken[nonce] = expires
        return True

"""Provisioning nonces: issued without a database write, spent in the database.

A nonce is ``random(16) || expires_at(u64 ms) || HMAC-SHA256(nonce_key, first 24 bytes)[:16]``.
The key is derived from the master key (:meth:`securetf.cas._store_api.Store.nonce_key`), so
every replica of the CAS on one database issues nonces that every other replica accepts, and
issuing one costs a MAC, no write. A nonce grants once: the transaction that grants a provisioning
also records its nonce as spent in the database (``Tx.spend_nonce``); of two requests with
one nonce, on one replica or two, only the first commit wins. A refused request uses its
nonce up in the memory of the replica that refused it, as before replicas: a database write
per refusal would let anyone with a nonce spend the database's serial commits on refusals.
Another replica may see that nonce once more before it expires; the evidence it carries is
bound to the keys of the runtime that made it, which alone can use a grant
(docs/adr/0015-cas-replicas.md).
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
    def __init__(self, key: bytes, *, ttl: float, clock: Callable[[], float]) -> None:
        self._key = key
        self._ttl = ttl
        self._clock = clock
        self._refused: dict[bytes, float] = {}  # nonces of refused requests, until expiry
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, "sha256").digest()[:16]

    def issue(self) -> tuple[bytes, float]:
        expires = self._clock() + self._ttl
        body = random_bytes(16) + _EXPIRY.pack(int(expires * 1000))
        return body + self._mac(body), expires

    def expiry(self, nonce: bytes) -> float | None:
        """When a nonce of this key expires, or None if it is not one or has expired.

        Also None for a nonce a request refused here used up. Whether a grant spent it is
        the database's to say (``Tx.spend_nonce``).
        """
        if len(nonce) != NONCE_SIZE:
            return None
        body, tag = nonce[:24], nonce[24:]
        if not constant_time_equal(self._mac(body), tag):
            return None
        expires: float = _EXPIRY.unpack(body[16:])[0] / 1000
        if expires < self._clock():
            return None
        with self._lock:
            return None if nonce in self._refused else expires

    def refused(self, nonce: bytes, expires: float) -> None:
        """A request with ``nonce`` was refused: this replica accepts it no more."""
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                self._refused = {n: e for n, e in self._refused.items() if e >= now}
                self._next_purge = now + self._ttl
            self._refused[nonce] = expires

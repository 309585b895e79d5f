"""Provisioning nonces: issued without a database write, spent in the database.

A nonce is ``random(16) || expires_at(u64 ms) || HMAC-SHA256(nonce_key, first 24 bytes)[:16]``.
The key is derived from the master key (:meth:`securetf.cas._store_api.Store.nonce_key`), so
every replica of the CAS on one database issues nonces that every other replica accepts, and
issuing one costs a MAC, no write. Single use is decided by the database: the transaction
that grants a provisioning also records its nonce as spent (``Tx.spend_nonce``), and a
refused request spends its nonce in a transaction of its own; of two requests with one nonce,
on one replica or two, only the first commit wins (docs/adr/0015-cas-replicas.md).
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable

from securetf.crypto import constant_time_equal, random_bytes

NONCE_SIZE = 40
_EXPIRY = struct.Struct(">Q")


class NonceBook:
    def __init__(self, key: bytes, *, ttl: float, clock: Callable[[], float]) -> None:
        self._key = key
        self._ttl = ttl
        self._clock = clock

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, "sha256").digest()[:16]

    def issue(self) -> tuple[bytes, float]:
        expires = self._clock() + self._ttl
        body = random_bytes(16) + _EXPIRY.pack(int(expires * 1000))
        return body + self._mac(body), expires

    def expiry(self, nonce: bytes) -> float | None:
        """When a nonce of this key expires, or None if it is not one or has expired.

        Whether it was spent already is the database's to say (``Tx.spend_nonce``).
        """
        if len(nonce) != NONCE_SIZE:
            return None
        body, tag = nonce[:24], nonce[24:]
        if not constant_time_equal(self._mac(body), tag):
            return None
        expires: float = _EXPIRY.unpack(body[16:])[0] / 1000
        return expires if expires >= self._clock() else None

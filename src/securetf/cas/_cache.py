"""Secrets and CA keys kept in the CAS's memory once unsealed.

A stored secret or CA changes only with a new policy version (an imported key replaced, a
CA rotated; generated secrets are made once), so they are cached per policy version:
reading them again from the database and unsealing them on every provisioning only costs
time. The CAS runs inside its TEE: its memory is where plaintext secrets live.
"""

from __future__ import annotations

import threading

from securetf.cas._store_api import Tx
from securetf.crypto.x509ca import EcKey
from securetf.errors import NotFoundError


class SecretCache:
    def __init__(self) -> None:
        self._secrets: dict[tuple[str, int, str], bytes] = {}
        self._cas: dict[tuple[str, int], tuple[EcKey, bytes]] = {}
        self._lock = threading.Lock()

    def secret(self, tx: Tx, policy: str, version: int, name: str) -> bytes:
        key = (policy, version, name)
        with self._lock:
            hit = self._secrets.get(key)
        if hit is not None:
            return hit
        value = tx.get_secret(policy, name)
        if value is None:
            raise NotFoundError(f"secret {name!r} of policy {policy!r} has no value")
        with self._lock:
            self._secrets[key] = value
        return value

    def ca(self, tx: Tx, policy: str, version: int) -> tuple[EcKey, bytes]:
        """The CA of ``policy`` at ``version`` (a CA changes only with a new version:
        securetf.cas._ca)."""
        with self._lock:
            hit = self._cas.get((policy, version))
        if hit is not None:
            return hit
        stored = tx.get_ca(policy)
        if stored is None:
            raise NotFoundError(f"policy {policy!r} has no CA")
        pair = (EcKey.from_pem(stored.key_pem, source="the policy CA key"), stored.cert_pem)
        with self._lock:
            self._cas[(policy, version)] = pair
        return pair

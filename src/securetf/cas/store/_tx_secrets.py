"""Secrets and policy CAs, sealed under the master key (see :mod:`._sealing`)."""

from __future__ import annotations

from sqlalchemy import select

from securetf.cas._records import PolicyCa
from securetf.cas.store._schema import cas, secrets
from securetf.cas.store._sealing import KIND_CA_KEY, KIND_SECRET
from securetf.cas.store._tx_base import TxBase

__all__ = ["SecretOps"]

_CA_KEY_NAME = "ca"  # the name a CA key is bound to (one CA per policy)


class SecretOps(TxBase):
    def put_secret(self, policy: str, name: str, value: bytes) -> None:
        sealed = self._sealer.seal(KIND_SECRET, policy, name, value)
        row = {"policy": policy, "name": name, "sealed": sealed}
        self._upsert(secrets, row, ("policy", "name"))
        self._record(policy, secrets, name, row)

    def get_secret(self, policy: str, name: str) -> bytes | None:
        row = self._conn.execute(
            select(secrets).where(secrets.c.policy == policy, secrets.c.name == name)
        ).first()
        if row is None:
            self._check_absent(policy, secrets, name)
            return None
        self._check_row(policy, secrets, name, row)
        return self._sealer.open(KIND_SECRET, policy, name, bytes(row.sealed))

    def put_ca(self, ca: PolicyCa) -> None:
        sealed = self._sealer.seal(KIND_CA_KEY, ca.policy, _CA_KEY_NAME, ca.key_pem)
        row = {"policy": ca.policy, "key_sealed": sealed, "cert_pem": ca.cert_pem}
        self._upsert(cas, row, ("policy",))
        self._record(ca.policy, cas, "", row)

    def get_ca(self, policy: str) -> PolicyCa | None:
        row = self._conn.execute(select(cas).where(cas.c.policy == policy)).first()
        if row is None:
            self._check_absent(policy, cas, "")
            return None
        self._check_row(policy, cas, "", row)
        key_pem = self._sealer.open(KIND_CA_KEY, policy, _CA_KEY_NAME, bytes(row.key_sealed))
        return PolicyCa(policy=policy, key_pem=key_pem, cert_pem=bytes(row.cert_pem))

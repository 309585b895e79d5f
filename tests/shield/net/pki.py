"""Certificates shaped like the CAS's (docs/cas.md): a policy CA and instance certificates."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from securetf.crypto.x509ca import EcKey, issue_certificate, new_ca
from securetf.shield.net import Identity

_serial = itertools.count(2)


@dataclass
class Pki:
    root: Path
    policy: str = "pol"

    def __post_init__(self) -> None:
        self.ca_key, self.ca_pem = new_ca(f"{self.policy} CA", now=time.time(), valid_days=1)

    def identity(self, service: str, instance: int, *, name: str | None = None) -> Identity:
        """Files for ``service-instance``, as the CAS would issue them."""
        key = EcKey.generate()
        common = f"{service}-{instance}"
        cert = issue_certificate(
            self.ca_key,
            self.ca_pem,
            key.public_der(),
            common_name=common,
            organization=self.policy,
            alt_names=[f"{common}.{self.policy}", f"{service}.{self.policy}"],
            server=True,
            client=True,
            serial=next(_serial),
            now=time.time(),
            valid_seconds=3600,
        )
        where = self.root / (name or f"{self.policy}-{common}-{next(_serial)}")
        where.mkdir(parents=True)
        (where / "tls.crt").write_bytes(cert)
        (where / "tls.key").write_bytes(key.to_pem())
        (where / "ca.crt").write_bytes(self.ca_pem)
        return Identity(where / "tls.crt", where / "tls.key", where / "ca.crt")

"""Certificates shaped like the CAS's (docs/cas.md): a policy CA and instance certificates,
and a stand-in for the CAS's instance status that knows exactly the certificates issued."""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from securetf.client.liveness import StatusLookup
from securetf.crypto.x509ca import EcKey, issue_certificate, new_ca
from securetf.protocol import InstanceStatus
from securetf.shield.net import Identity

_serial = itertools.count(2)
VALID_SECONDS = 3600


@dataclass
class Pki:
    root: Path
    policy: str = "pol"

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)  # the benchmarks pass a fresh path
        self.ca_key, self.ca_pem = new_ca(f"{self.policy} CA", now=time.time(), valid_days=1)

    def identity(self, service: str, instance: int, *, name: str | None = None) -> Identity:
        """Files for ``service-instance``, as the CAS would issue them."""
        key = EcKey.generate()
        common = f"{service}-{instance}"
        serial = next(_serial)
        cert = issue_certificate(
            self.ca_key,
            self.ca_pem,
            key.public_der(),
            common_name=common,
            organization=self.policy,
            alt_names=[f"{common}.{self.policy}", f"{service}.{self.policy}"],
            server=True,
            client=True,
            serial=serial,
            now=time.time(),
            valid_seconds=VALID_SECONDS,
        )
        self._register(serial, service, instance)
        where = self.root / (name or f"{self.policy}-{common}-{next(_serial)}")
        where.mkdir(parents=True)
        (where / "tls.crt").write_bytes(cert)
        (where / "tls.key").write_bytes(key.to_pem())
        (where / "ca.crt").write_bytes(self.ca_pem)
        return Identity(where / "tls.crt", where / "tls.key", where / "ca.crt")

    @property
    def registry(self) -> Path:
        """The certificates this CA issued, by serial: what :func:`registry_lookup` reads."""
        return self.root / "issued.json"

    def _register(self, serial: int, service: str, instance: int) -> None:
        issued = json.loads(self.registry.read_text()) if self.registry.exists() else {}
        issued[str(serial)] = {
            "policy": self.policy,
            "service": service,
            "instance": instance,
            "expires_at": time.time() + VALID_SECONDS,
        }
        partial = self.registry.with_suffix(".tmp")
        partial.write_text(json.dumps(issued))
        os.replace(partial, self.registry)  # a node reading it never sees half a file


def registry_lookup(registry: Path) -> StatusLookup:
    """The CAS's answer for a node without a CAS: live exactly the certificates the Pki
    issued (read afresh on every question); any other serial is refused (fails closed)."""

    def lookup(policy: str, serial: int) -> InstanceStatus:
        issued = json.loads(registry.read_text()) if registry.exists() else {}
        known = issued.get(str(serial))
        if known is None or known["policy"] != policy:
            return InstanceStatus(policy=policy, serial=serial, live=False, reason="not issued")
        return InstanceStatus(
            policy=policy,
            serial=serial,
            live=True,
            service=known["service"],
            instance=known["instance"],
            expires_at=known["expires_at"],
        )

    return lookup

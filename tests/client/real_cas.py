"""A real CAS for relying parties' tests: a CAS process, attested, that issues instance
certificates through real provisioning (sim evidence), and owners who update its policies.

Each test takes a policy of its own (the test policy of tests/cas/support.py under a new
name), so that the tests sharing one CAS never supersede or revoke each other's instances.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from securetf.client import CasClient, load_pin
from tests.cas.server_support import CasProcess, attested_cas
from tests.cas.support import DATASET, MEASUREMENT, Owners, Runtime, policy_yaml


@dataclass(frozen=True)
class Issued:
    """An instance's certificate, key and policy CA, as files, and the certificate's serial."""

    cert: Path
    key: Path
    ca: Path
    serial: int
    policy: str


@dataclass
class RealCas:
    proc: CasProcess
    owners: Owners = field(default_factory=Owners)

    @property
    def url(self) -> str:
        return self.proc.url

    def client(self) -> CasClient:
        return CasClient(load_pin(self.proc.url, self.proc.home), home=self.proc.home)

    def new_policy(self) -> str:
        """Version 1 of the test policy under a fresh name; alice alone may update it."""
        name = f"p{os.urandom(5).hex()}"
        with self.client() as cas:
            cas.apply_policy(self._yaml(name, 1, None), self.owners.alice, DATASET)
        return name

    def update(self, policy: str, **changes: object) -> None:
        """The next version of ``policy`` with ``changes`` (see policy_yaml), in force at once."""
        with self.client() as cas:
            current = cas.policy(policy)
            yaml = self._yaml(policy, current.version + 1, current.hash, **changes)
            assert cas.apply_policy(yaml, self.owners.alice).status == "active"

    def _yaml(self, name: str, version: int, predecessor: str | None, **changes: object) -> bytes:
        text = policy_yaml(
            self.owners,
            version=version,
            predecessor=predecessor,
            threshold=1,
            **changes,  # type: ignore[arg-type]
        )
        return text.replace(b"\nname: cancer\n", f"\nname: {name}\n".encode(), 1)

    def provision(
        self,
        policy: str,
        out: Path,
        *,
        service: str = "train",
        instance: int = 0,
        measurement: bytes = MEASUREMENT,
    ) -> Issued:
        """What ``securetf run`` does to get an instance certificate, with sim evidence."""
        runtime = Runtime(home=self.proc.home, measurement=measurement)
        with self.client() as cas:
            request = runtime.request(cas.nonce().nonce, service=service, instance=instance)
            response = cas.provision(request.model_copy(update={"policy": policy}))
        out.mkdir(parents=True)
        (out / "tls.crt").write_text(response.certificate_pem)
        (out / "tls.key").write_bytes(runtime.tls.to_pem())
        (out / "tls.key").chmod(0o600)
        (out / "ca.crt").write_text(response.ca_certificate_pem)
        return Issued(out / "tls.crt", out / "tls.key", out / "ca.crt", response.serial, policy)


def real_cas(base: Path) -> Iterator[RealCas]:
    """Run a CAS in ``base`` and attest it (the body of a fixture)."""
    with attested_cas(base) as proc:
        yield RealCas(proc)

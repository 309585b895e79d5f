"""Whether a verified instance certificate still speaks for a live instance (docs/cas.md,
"Revocation: superseded and disallowed instances").

A certificate stays cryptographically valid for its 24 h after a new provisioning of its
slot supersedes it or a policy update stops allowing its instance; only the CAS knows.
Relying parties (the network shield's tunnels, the serving client) ask it with the
certificate's serial after their TLS handshake verified chain and name, and before they
send or relay a single byte.

:func:`require_live` is the decision: pure, it raises unless the CAS's answer is about
this certificate and says live. :class:`LivenessChecker` asks the CAS and remembers a
"live" answer for :data:`LIVE_TTL` seconds, never past the expiry the CAS states; it never
remembers a refusal. When the CAS cannot be asked, the certificate is refused (fail closed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from securetf.errors import AuthenticationError, UsageError
from securetf.protocol import InstanceStatus

__all__ = [
    "LIVE_TTL",
    "MAX_REMEMBERED",
    "CertifiedInstance",
    "LivenessChecker",
    "LogCheck",
    "NotLiveError",
    "StatusLookup",
    "require_live",
]

#: Seconds a "live" answer is reused for the same certificate: a revocation reaches every
#: relying party's new connections within this time.
LIVE_TTL = 30.0
#: Certificates remembered at once; when full, the entry closest to its end is forgotten.
MAX_REMEMBERED = 1024

#: ``(policy, serial) -> InstanceStatus``: :meth:`securetf.client.CasClient.instance_status`.
StatusLookup = Callable[[str, int], InstanceStatus]
#: ``(certificate DER, live answer)``: raises unless the certificate is in the CAS's
#: transparency log (:meth:`securetf.client.CasClient.prove_certificate`).
LogCheck = Callable[[bytes, InstanceStatus], None]


class NotLiveError(AuthenticationError):
    """The certificate verifies, but the CAS says its instance is no longer live."""


@dataclass(frozen=True)
class CertifiedInstance:
    """What a CAS-issued instance certificate names (``CN=<service>-<n>, O=<policy>``)."""

    serial: int
    policy: str
    service: str
    instance: int

    @property
    def name(self) -> str:
        return f"{self.service}-{self.instance}"

    @classmethod
    def from_der(cls, der: bytes) -> CertifiedInstance:
        try:
            cert = x509.load_der_x509_certificate(der)
            common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        except ValueError:
            raise AuthenticationError("the peer's certificate cannot be parsed") from None
        if len(common) != 1 or len(org) != 1:
            raise AuthenticationError("the peer's certificate is not an instance certificate")
        service, dash, number = str(common[0].value).rpartition("-")
        if not dash or not service or not (number.isascii() and number.isdigit()):
            raise AuthenticationError("the peer's certificate is not an instance certificate")
        return cls(cert.serial_number, str(org[0].value), service, int(number))


def require_live(status: InstanceStatus, cert: CertifiedInstance) -> None:
    """Raise unless ``status`` is the CAS's answer about ``cert`` and says it is live.

    1. The answer is about this certificate: its policy and its serial.
    2. The CAS says the instance is live (else :class:`NotLiveError`, with its reason).
    3. The live instance is the one the certificate names: same service, same slot.
    """
    if status.policy != cert.policy or status.serial != cert.serial:
        raise AuthenticationError(
            f"the CAS answered about another certificate than {cert.name}'s; refused"
        )
    if not status.live:
        raise NotLiveError(
            f"{cert.name} of policy {cert.policy!r} (certificate serial {cert.serial}) is no "
            f"longer live: {status.reason or 'revoked'}. Its certificate was superseded by a "
            "new provisioning of its slot or revoked by a policy update; nothing was sent. "
            "Connect to the instance running now under the policy in force."
        )
    if (status.service, status.instance) != (cert.service, cert.instance):
        raise AuthenticationError(
            f"the CAS knows certificate serial {cert.serial} as "
            f"{status.service}-{status.instance}, not {cert.name}; refused"
        )


class LivenessChecker:
    """Asks the CAS whether certificates of one policy's instances are still live.

    ``lookup`` is how to ask (``CasClient.instance_status``, or the CAS core in tests);
    ``monotonic`` times the remembered answers, ``wall`` compares with the certificate's
    expiry as the CAS states it. With ``logged``, a certificate is also refused unless it
    is in the CAS's transparency log (checked with each fresh answer). Safe to share
    between threads.
    """

    def __init__(
        self,
        lookup: StatusLookup,
        *,
        policy: str,
        ttl: float = LIVE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        logged: LogCheck | None = None,
    ) -> None:
        if not policy:
            raise UsageError("a liveness check needs the policy's name")
        if not 0 <= ttl <= LIVE_TTL:
            raise UsageError(f"a remembered answer lasts from 0 to {LIVE_TTL:g} seconds")
        self.policy = policy
        self._lookup, self._ttl, self._logged = lookup, ttl, logged
        self._monotonic, self._wall = monotonic, wall
        self._remembered: dict[int, tuple[float, InstanceStatus]] = {}
        self._lock = threading.Lock()

    def check(self, der: bytes) -> InstanceStatus:
        """The CAS's "live" answer for the certificate ``der``, which TLS has verified
        (chain to the policy CA, name); raise :class:`NotLiveError` or
        AuthenticationError otherwise."""
        cert = CertifiedInstance.from_der(der)
        if cert.policy != self.policy:
            raise AuthenticationError(
                f"the peer's certificate is of policy {cert.policy!r}, not {self.policy!r}"
            )
        remembered = self._recall(cert.serial)
        status = remembered
        if status is None:
            try:
                status = self._lookup(self.policy, cert.serial)
            except Exception as exc:  # no answer is a refusal: fail closed
                raise AuthenticationError(
                    f"cannot confirm with the CAS that {cert.name} of policy {self.policy!r} "
                    f"(certificate serial {cert.serial}) is still live, so it is refused and "
                    f"nothing was sent ({exc}); make sure the CAS is reachable, then retry"
                ) from exc
        require_live(status, cert)
        if remembered is None:
            if self._logged is not None:
                self._logged(der, status)  # raises: not in the log, or a forked log
            self._remember(cert.serial, status)
        return status

    def _recall(self, serial: int) -> InstanceStatus | None:
        now = self._monotonic()
        with self._lock:
            entry = self._remembered.get(serial)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._remembered[serial]
                return None
            return entry[1]

    def _remember(self, serial: int, status: InstanceStatus) -> None:
        """Keep a live answer for the TTL, but not past the expiry the CAS stated."""
        keep = min(self._ttl, status.expires_at - self._wall())
        if keep <= 0:
            return
        now = self._monotonic()
        with self._lock:
            if serial not in self._remembered and len(self._remembered) >= MAX_REMEMBERED:
                self._remembered = {s: e for s, e in self._remembered.items() if e[0] > now}
                if len(self._remembered) >= MAX_REMEMBERED:
                    soonest = min(self._remembered, key=lambda s: self._remembered[s][0])
                    del self._remembered[soonest]
            self._remembered[serial] = (now + keep, status)

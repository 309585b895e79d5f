"""A policy's CA, its rotation, and the bundle of CAs its instances and clients trust.

The stored CA (:class:`PolicyCa`) keeps the current key and a PEM *bundle*: the current
CA's certificate first, then the certificates of retired CAs, each issued again to end when
its overlap ends (:func:`securetf.crypto.x509ca.retire_ca`). Raising ``ca.generation`` in a
policy update makes a new CA under a new name ("<policy> CA <generation>"), so chains never
confuse the two. What the CAS hands out is :func:`trusted_bundle`: the certificates still
valid at that moment. After the overlap the retired CA is in no bundle, and its own
certificate has expired for every verifier that kept an old bundle.
"""

from __future__ import annotations

from securetf.cas._records import PolicyCa
from securetf.cas.settings import CasSettings
from securetf.crypto import Certificate
from securetf.crypto.x509ca import EcKey, new_ca, retire_ca
from securetf.errors import PolicyError
from securetf.policy import Policy

__all__ = ["make_ca", "rotate_if_asked", "trusted_bundle"]


def _name(policy: str, generation: int) -> str:
    return f"{policy} CA" if generation == 1 else f"{policy} CA {generation}"


def make_ca(policy: Policy, settings: CasSettings, now: float) -> PolicyCa:
    key, cert = new_ca(
        _name(policy.name, policy.ca.generation), now=now, valid_days=settings.ca_valid_days
    )
    return PolicyCa(policy.name, key.to_pem(), cert)


def rotate_if_asked(
    ca: PolicyCa, previous: Policy, policy: Policy, settings: CasSettings, now: float
) -> PolicyCa | None:
    """The rotated CA if ``policy`` raises the generation of ``previous``; else None."""
    old, new = previous.ca.generation, policy.ca.generation
    if new < old:
        raise PolicyError(
            f"ca.generation goes down from {old} to {new}: a CA is never brought back; "
            f"keep {old} or raise it to rotate the CA"
        )
    if new == old:
        return None
    fresh = make_ca(policy, settings, now)
    retired = retire_ca(
        EcKey.from_pem(ca.key_pem, source="the policy CA key"),
        _first(ca.cert_pem),
        until=now + policy.ca.overlap_seconds,
    )
    earlier = [c.pem() for c in Certificate.load_pem_chain(ca.cert_pem)[1:]]
    bundle = b"".join([fresh.cert_pem, retired, *earlier])
    return PolicyCa(policy.name, fresh.key_pem, trusted_bundle(bundle, now))


def _first(bundle: bytes) -> bytes:
    return Certificate.load_pem_chain(bundle)[0].pem()


def trusted_bundle(bundle: bytes, now: float) -> bytes:
    """The current CA and the retired ones whose overlap has not ended at ``now``."""
    certs = Certificate.load_pem_chain(bundle)
    kept = [certs[0]] + [c for c in certs[1:] if c.not_before <= now < c.not_after]
    return b"".join(c.pem() for c in kept)

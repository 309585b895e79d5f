"""Following a CAS's key rotation without re-pinning by hand.

When the pinned CAS presents another certificate, :func:`follow_rotation` accepts it only if

1. its rotation chain leads from the pinned key to the presented one, every link signed by
   the key it retires (:func:`securetf.protocol.rotation.verify_chain`);
2. the CAS attests the new certificate afresh: evidence over our nonce binding it, from the
   pinned TEE with the pinned measurement (a new build is not a rotation: attest again);
3. its audit key and transparency log key are the pinned ones (only the TLS key rotates).

Then the new pin replaces the old one. Anything else raises and keeps the old pin.
"""

from __future__ import annotations

import logging
import os
import ssl

from securetf.attestation import default_sim_trust
from securetf.attestation.collateral import CollateralSource
from securetf.attestation.sim_key import securetf_home
from securetf.client.cas_attest import verify_cas
from securetf.client.pins import CasPin, save_pin
from securetf.crypto import Certificate
from securetf.errors import AttestationError
from securetf.protocol.rotation import verify_chain

__all__ = ["follow_rotation", "is_certificate_mismatch"]

_log = logging.getLogger(__name__)


def is_certificate_mismatch(exc: BaseException) -> bool:
    """Whether ``exc`` (from the HTTP client) comes from a certificate that is not the pinned
    one."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def follow_rotation(pin: CasPin, *, now: int) -> CasPin:
    """The pin of the CAS's rotated key, saved; raise if it is not a rotation of ``pin``."""
    collateral = None
    if pin.tee != "sim":
        collateral = CollateralSource(
            pccs_url=os.environ.get("SECURETF_PCCS_URL"),
            kds_url=os.environ.get("SECURETF_KDS_URL"),
            cache_dir=securetf_home() / "collateral",
        )
    result = verify_cas(
        pin.url,
        now=now,
        expect_measurement=pin.measurement,
        allowed_tees=(pin.tee,),
        sim_trust=default_sim_trust() if pin.tee == "sim" else (),
        collateral=collateral,
    )
    new = result.pin
    pinned = Certificate.load(pin.certificate_pem.encode())
    verify_chain(pinned.public_key_der(), Certificate.load(new.certificate_pem.encode()))
    if new.audit_public_key != pin.audit_public_key or new.log_vkey != pin.log_vkey:
        raise AttestationError(
            f"the CAS at {pin.url} rotated its TLS key but also changed its audit or log key: "
            "that is not a key rotation; attest it again (securetf cas attest) only if you "
            "trust it"
        )
    save_pin(new)
    _log.warning("the CAS at %s rotated its TLS key; the pin follows it", pin.url)
    return new

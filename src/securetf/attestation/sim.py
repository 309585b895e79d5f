"""Simulated evidence: its binary format, how it is signed, and its verifier.

Format (all sizes in bytes, integers big-endian), 208 bytes in total::

    offset  size  field
         0     8  magic "STFSIM01"
         8    32  measurement of the service
        40    64  report data
       104     8  timestamp, unix seconds (unsigned)
       112    32  platform public key (raw Ed25519)
       144    64  Ed25519 signature by the platform key over bytes 0..143

It gives NO hardware protection: whoever holds the platform key can forge it. Every
production and every acceptance logs a warning saying so.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Collection

from securetf._logutil import warn_loudly
from securetf.attestation.claims import REPORT_DATA_SIZE, Claims
from securetf.attestation.tcb import SIMULATED
from securetf.crypto import SigningKey, VerifyKey
from securetf.errors import AttestationError, AuthenticationError, UsageError

__all__ = [
    "MAX_AGE",
    "MAX_CLOCK_SKEW",
    "MEASUREMENT_SIZE",
    "SIM_EVIDENCE_SIZE",
    "SIM_MAGIC",
    "sign_sim_evidence",
    "verify_sim",
]

_log = logging.getLogger(__name__)

SIM_MAGIC = b"STFSIM01"
MEASUREMENT_SIZE = 32
_BODY = struct.Struct(f">8s{MEASUREMENT_SIZE}s{REPORT_DATA_SIZE}sQ32s")
_SIGNATURE_SIZE = 64
SIM_EVIDENCE_SIZE = _BODY.size + _SIGNATURE_SIZE
# Evidence older than this, or dated further in the future than the skew, is refused.
MAX_AGE = 600
MAX_CLOCK_SKEW = 60

_WARNING = "SIMULATED attestation %s: it gives NO hardware protection (development only)"


def sign_sim_evidence(
    key: SigningKey, *, measurement: bytes, report_data: bytes, timestamp: int
) -> bytes:
    """Make sim evidence. Only :class:`SimProducer` and tests should call this."""
    if len(measurement) != MEASUREMENT_SIZE:
        raise UsageError(f"a sim measurement is {MEASUREMENT_SIZE} bytes, got {len(measurement)}")
    if len(report_data) != REPORT_DATA_SIZE:
        raise UsageError(f"report data is {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
    if not 0 <= timestamp < 2**64:
        raise UsageError("timestamp out of range")
    body = _BODY.pack(SIM_MAGIC, measurement, report_data, timestamp, key.verify_key().raw())
    warn_loudly(_log, _WARNING, "evidence produced")
    return body + key.sign(body)


def verify_sim(evidence: bytes, *, trusted: Collection[VerifyKey], now: int) -> Claims:
    """Verify sim evidence made by one of the ``trusted`` platform keys at about ``now``.

    There is no default trust: pass :func:`default_sim_trust` explicitly to trust the
    local key. Returns the claims; raises :class:`AttestationError`.
    """
    if not trusted:
        raise AttestationError("no sim platform key is trusted, so no sim evidence can verify")
    # 1. Size and magic.
    if len(evidence) != SIM_EVIDENCE_SIZE:
        raise AttestationError(
            f"sim evidence is {SIM_EVIDENCE_SIZE} bytes, got {len(evidence)} "
            "(truncated, oversized or not sim evidence)"
        )
    body, signature = evidence[: _BODY.size], evidence[_BODY.size :]
    magic, measurement, report_data, timestamp, key_raw = _BODY.unpack(body)
    if magic != SIM_MAGIC:
        raise AttestationError("not sim evidence (bad magic); was it made by another TEE?")
    # 2. The platform key is trusted, and its signature covers the exact bytes received.
    key = next((k for k in trusted if k.raw() == key_raw), None)
    if key is None:
        raise AttestationError(
            f"sim evidence signed by untrusted platform key {key_raw.hex()}; "
            "add its key to the trusted sim platform keys to accept it"
        )
    try:
        key.verify(signature, body)
    except AuthenticationError:
        raise AttestationError("sim evidence signature is invalid (tampered evidence)") from None
    # 3. Freshness window.
    if timestamp > now + MAX_CLOCK_SKEW:
        raise AttestationError(f"sim evidence is dated in the future ({timestamp} > {now})")
    if now - timestamp > MAX_AGE:
        raise AttestationError(
            f"sim evidence is {now - timestamp} s old, more than the {MAX_AGE} s allowed"
        )
    warn_loudly(_log, _WARNING, "evidence accepted")
    return Claims(
        tee="sim",
        measurement=measurement,
        report_data=report_data,
        signer=key.to_text(),
        tcb_status=SIMULATED,
        timestamp=timestamp,
    )

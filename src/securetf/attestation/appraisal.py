"""Appraisal: decide whether verified claims satisfy a policy. Pure: no I/O, no clock.

Steps, in order (the first failing one raises :class:`AttestationError`):

1. The TEE type is allowed (``sim`` only when named), and so are the roots: evidence
   chained to test roots (emulated hardware) only when the policy names ``test-roots``.
2. The platform is acceptable: debug mode, TCB status and advisories
   (:func:`securetf.attestation.tcb.appraise_platform`).
3. The image: hardware evidence matches one of the policy's reference values for its TEE
   (:mod:`securetf.attestation.reference`) when they are given; otherwise (sim, or a
   caller with one expected image such as a client checking the CAS) the measurement is
   one of the expected ones. An empty set accepts nothing.
4. The report data is exactly the expected binding (nonce, keys, app measurement).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from securetf._logutil import warn_loudly
from securetf.attestation.claims import REPORT_DATA_SIZE, TEST_ROOTS, Claims, check_tee
from securetf.attestation.reference import TeeReferences, check_references
from securetf.attestation.tcb import appraise_platform
from securetf.crypto import constant_time_equal
from securetf.errors import AttestationError, MeasurementError, UsageError

__all__ = ["appraise", "measurement_name"]

_log = logging.getLogger(__name__)


def appraise(
    claims: Claims,
    *,
    allowed_tees: Collection[str],
    expected_measurements: Collection[bytes],
    expected_report_data: bytes,
    tolerate: Collection[str] = frozenset(),
    ignore_advisories: Collection[str] = frozenset(),
    allow_debug: bool = False,
    references: TeeReferences | None = None,
    rtmr3_events: Sequence[bytes] = (),
) -> Claims:
    """Return ``claims`` if they satisfy the policy given by the keywords; raise otherwise."""
    allowed = {check_tee(t) for t in allowed_tees if t != TEST_ROOTS}
    if len(expected_report_data) != REPORT_DATA_SIZE:
        raise UsageError(f"expected report data must be {REPORT_DATA_SIZE} bytes")
    # 1. TEE type.
    if claims.tee not in allowed:
        hint = " (simulation protects nothing; name it explicitly)" if claims.tee == "sim" else ""
        raise AttestationError(
            f"TEE {claims.tee} is not allowed by this policy{hint}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    if claims.tee == "sim":
        warn_loudly(_log, "policy accepts SIMULATED evidence: no hardware protection at all")
    if claims.test_roots:
        if TEST_ROOTS not in allowed_tees:
            raise AttestationError(
                f"the {claims.tee} evidence chains to securetf's TEST roots (emulated "
                "hardware), not the vendor's; a policy accepts it only when tee.allow names "
                f"{TEST_ROOTS}"
            )
        warn_loudly(
            _log,
            f"policy accepts {claims.tee} evidence from EMULATED hardware (test roots): "
            "no hardware protection at all",
        )
    # 2. Platform: debug, TCB status, advisories.
    appraise_platform(
        claims, tolerate=tolerate, ignore_advisories=ignore_advisories, allow_debug=allow_debug
    )
    # 3. Image.
    if references is not None and claims.tee != "sim":
        check_references(claims, references, rtmr3_events=rtmr3_events)
    elif not expected_measurements:
        raise AttestationError(
            "the policy lists no expected measurement, so no evidence can match; "
            "add the service's measurement to it"
        )
    elif not any(constant_time_equal(claims.measurement, m) for m in expected_measurements):
        # Only the evidence's own value: the expected ones are the policy's to tell.
        raise MeasurementError(
            f"measurement {measurement_name(claims)} is not one the policy expects"
        )
    # 4. Report data binding.
    if not constant_time_equal(claims.report_data, expected_report_data):
        raise AttestationError(
            "report data does not match the expected binding of nonce, keys and app "
            "measurement (stale or replayed evidence, evidence made for another session, "
            "or for an app the policy does not name)"
        )
    return claims


def measurement_name(claims: Claims) -> str:
    """The evidence's measurement as a policy or ``--expect-measurement`` writes it:
    ``sha256:<hex>`` for sim (the app's or package's SHA-256), ``<tee>:<hex>`` otherwise."""
    kind = "sha256" if claims.tee == "sim" else claims.tee
    return f"{kind}:{claims.measurement.hex()}"

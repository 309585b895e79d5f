"""TCB status tolerance: which vendor TCB verdicts a policy accepts, and on which platform.

Each TCB status maps to a set of conditions. A status passes only if every condition it
carries is tolerated; ``Revoked`` and any status securetf does not know never pass.
Advisories ride with the status they explain (see :func:`appraise_platform`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from securetf.attestation.claims import Claims
from securetf.errors import AttestationError, UsageError

__all__ = [
    "CONDITIONS",
    "SIMULATED",
    "STATUS_CONDITIONS",
    "appraise_platform",
    "check_conditions",
    "conditions_of",
]

_log = logging.getLogger(__name__)

SW_HARDENING = "sw-hardening-needed"
CONFIGURATION = "configuration-needed"
OUT_OF_DATE = "out-of-date"
CONDITIONS = frozenset({SW_HARDENING, CONFIGURATION, OUT_OF_DATE})

# The status of simulated evidence: it carries no TCB at all, and appraisal gates it on
# the TEE type ("sim" must be allowed explicitly) rather than on conditions.
SIMULATED = "Simulated"

# Intel's TCB statuses (PCS API v4, tcbStatus) and what each one says about the platform.
STATUS_CONDITIONS: dict[str, frozenset[str]] = {
    "UpToDate": frozenset(),
    "SWHardeningNeeded": frozenset({SW_HARDENING}),
    "ConfigurationNeeded": frozenset({CONFIGURATION}),
    "ConfigurationAndSWHardeningNeeded": frozenset({CONFIGURATION, SW_HARDENING}),
    "OutOfDate": frozenset({OUT_OF_DATE}),
    "OutOfDateConfigurationNeeded": frozenset({OUT_OF_DATE, CONFIGURATION}),
}


# What makes each TEE's evidence debug-mode, by the name its vendor gives it.
_DEBUG_NAMES = {
    "sgx": "a debug enclave: SGX ATTRIBUTES.DEBUG is set",
    "tdx": "a debug TD: TDX TD_ATTRIBUTES.DEBUG is set",
    "sev-snp": "a debuggable guest: the SEV-SNP guest policy's DEBUG bit is set",
}


def check_conditions(values: Collection[str]) -> frozenset[str]:
    """Validate a set of tolerated conditions (user input): unknown names are a UsageError."""
    unknown = sorted(set(values) - CONDITIONS)
    if unknown:
        raise UsageError(
            f"unknown TCB condition(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(CONDITIONS))}"
        )
    return frozenset(values)


def conditions_of(status: str, tee: str) -> frozenset[str]:
    """The conditions ``status`` carries; Revoked and unknown statuses raise."""
    if status == SIMULATED and tee == "sim":
        return frozenset()
    if status == "Revoked":
        raise AttestationError(
            "TCB status Revoked: the platform's keys or TCB were revoked; no setting accepts it"
        )
    conditions = STATUS_CONDITIONS.get(status)
    if conditions is None:
        raise AttestationError(
            f"TCB status {status!r} is unknown to securetf for TEE {tee}; "
            "unknown statuses never pass"
        )
    return conditions


def appraise_platform(
    claims: Claims,
    *,
    tolerate: Collection[str],
    ignore_advisories: Collection[str] = (),
    allow_debug: bool = False,
) -> Claims:
    """Accept or refuse the platform behind ``claims``: debug mode, TCB status, advisories.

    Decision on advisories: an advisory explains a non-UpToDate status, so tolerating all of
    a status's conditions accepts the advisories listed with it (they stay in the claims).
    An advisory listed with a status that carries no condition (``UpToDate``) fails unless
    it is named in ``ignore_advisories``, so it never passes silently under an
    UpToDate-only policy. Returns ``claims``; raises :class:`AttestationError`.
    """
    tolerated = check_conditions(tolerate)
    if claims.debug:
        if not allow_debug:
            raise AttestationError(
                f"the {claims.tee} evidence comes from a debug-mode TEE "
                f"({_DEBUG_NAMES.get(claims.tee, 'debug')}), whose memory the host can read; "
                "set allow_debug to accept it (never in production)"
            )
        _log.warning("accepting %s evidence from a DEBUG TEE: no confidentiality", claims.tee)
    conditions = conditions_of(claims.tcb_status, claims.tee)
    missing = sorted(conditions - tolerated)
    if missing:
        advisories = f" (advisories: {', '.join(claims.advisories)})" if claims.advisories else ""
        raise AttestationError(
            f"TCB status {claims.tcb_status} carries condition {', '.join(missing)}"
            f"{advisories}; add {' and '.join(missing)} to tee.tolerate (CLI: --tolerate) "
            "to accept it"
        )
    if not conditions:
        ignored = set(ignore_advisories)
        unexplained = [a for a in claims.advisories if a not in ignored]
        if unexplained:
            raise AttestationError(
                f"TCB status {claims.tcb_status} lists advisories {', '.join(unexplained)}; "
                "add them to tee.ignore_advisories to accept them"
            )
    return claims

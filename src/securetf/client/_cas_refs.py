"""What a caller expects of a CAS's code: reference values (in the forms
``securetf cas attest --expect-reference`` takes), a measurement
(``--expect-measurement``), and the check of verified claims against them
(:func:`securetf.client.cas_attest.verify_cas`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from securetf.attestation import Claims, check_references
from securetf.crypto import constant_time_equal
from securetf.errors import AttestationError, UsageError
from securetf.policy import Tee
from securetf.protocol import CasIdentityDoc

__all__ = [
    "HARDWARE_TEES",
    "check_image",
    "claimed_measurement",
    "expected_references",
    "named_tees",
    "parse_measurement",
    "pin_measurement",
    "reference_json",
]

HARDWARE_TEES = ("sgx", "tdx", "sev-snp")
#: ``tee.sev-snp`` in a policy, ``sev_snp`` on the model.
_TEE_KEYS = {"sgx": "sgx", "tdx": "tdx", "sev-snp": "sev-snp"}
#: The hex length of each TEE's main measurement.
_HEX_SIZES = {"sim": 64, "sgx": 64, "tdx": 96, "sev-snp": 96}
_MEASUREMENT = re.compile(r"(sha256|sgx|tdx|sev-snp):([0-9a-f]+)")
_MEASUREMENT_FORMS = "sha256:<64 hex> (sim), sgx:<64 hex>, tdx:<96 hex> or sev-snp:<96 hex>"


def _guess_tee(values: object) -> str | None:
    """The TEE one set of reference values is for, by its names."""
    if isinstance(values, list):
        tees = {_guess_tee(item) for item in values}
        return tees.pop() if len(tees) == 1 else None
    if not isinstance(values, Mapping):
        return None
    if "mr_td" in values:
        return "tdx"
    if "mr_enclave" in values or "mr_signer" in values:
        return "sgx"
    if "measurement" in values or "min_tcb" in values:
        return "sev-snp"
    return None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        ".".join(str(part) for part in error["loc"]) + ": " + error["msg"] for error in exc.errors()
    )


def expected_references(value: Mapping[str, Any]) -> Tee:
    """Reference values a CAS's evidence must match, from one of these JSON forms:

    1. one set, as ``securetf attest verify --json`` prints it under ``reference``
       (``{"mr_td": ..., "rtmr0": ...}``); its TEE is told by its names (``mr_enclave`` or
       ``mr_signer``: sgx, ``mr_td``: tdx, ``measurement``: sev-snp);
    2. that whole output (an object with ``tee`` and ``reference``);
    3. a policy's ``tee`` section: ``{"sgx": ..., "tdx": ..., "sev-snp": ...}``, each one
       set or a list of sets (evidence must match one of them).

    The values are checked as a policy's are (docs/policy.md, "Reference values"); a
    malformed set is a :class:`UsageError`.
    """
    if not isinstance(value, Mapping) or not value:
        raise UsageError("the expected reference values must be a non-empty JSON object")
    sets: dict[str, Any]
    if "reference" in value:
        tee = value.get("tee")
        if tee not in HARDWARE_TEES:
            raise UsageError(
                "expected reference values with a reference need the tee it is for "
                f"(sgx, tdx or sev-snp), not {tee!r}"
            )
        sets = {_TEE_KEYS[str(tee)]: value["reference"]}
    elif set(value) <= set(_TEE_KEYS):
        sets = dict(value)
    else:
        tee = _guess_tee(value)
        if tee is None:
            raise UsageError(
                "cannot tell which TEE the expected reference values are for: name mr_enclave "
                "or mr_signer (sgx), mr_td (tdx) or measurement (sev-snp), or key them by TEE"
            )
        sets = {_TEE_KEYS[tee]: dict(value)}
    try:
        refs = Tee.model_validate({"allow": sorted(sets), **sets})
    except ValidationError as exc:
        raise UsageError(
            f"the expected reference values are invalid: {_validation_message(exc)}"
        ) from None
    if not named_tees(refs):
        raise UsageError("the expected reference values name no set of values")
    return refs


def named_tees(refs: Tee) -> list[str]:
    return [tee for tee in HARDWARE_TEES if getattr(refs, tee.replace("-", "_"))]


def parse_measurement(expected: str) -> tuple[str, bytes]:
    """``sha256:<hex>`` (sim) or ``<tee>:<hex>`` (hardware) as (tee, bytes)."""
    match = _MEASUREMENT.fullmatch(expected.strip().lower())
    if match is None:
        raise UsageError(f"--expect-measurement takes {_MEASUREMENT_FORMS}, not {expected!r}")
    kind, digits = match.groups()
    tee = "sim" if kind == "sha256" else kind
    if len(digits) != _HEX_SIZES[tee]:
        raise UsageError(f"--expect-measurement takes {_MEASUREMENT_FORMS}, not {expected!r}")
    return tee, bytes.fromhex(digits)


def claimed_measurement(doc: CasIdentityDoc) -> bytes:
    """The package measurement a sim CAS claims (and its evidence must report)."""
    try:
        tee, measurement = parse_measurement(doc.measurement)
    except UsageError:
        tee, measurement = "", b""
    if tee != "sim":
        raise AttestationError(
            f"the CAS claims the measurement {doc.measurement[:80]!r}, not sha256:<64 hex>"
        )
    return measurement


def pin_measurement(claims: Claims) -> str:
    """The measurement a pin records: ``sha256:<hex>`` (sim) or ``<tee>:<hex>``."""
    kind = "sha256" if claims.tee == "sim" else claims.tee
    return f"{kind}:{claims.measurement.hex()}"


def check_image(claims: Claims, *, refs: Tee | None, expected: tuple[str, bytes] | None) -> None:
    """Hardware evidence: the image is the expected one (raise naming what differs)."""
    if expected is not None:
        tee, measurement = expected
        if tee == "sim":
            raise AttestationError(
                f"the expected measurement sha256:{measurement.hex()} is a securetf "
                f"package's, which only sim evidence reports; this CAS runs on {claims.tee}: "
                f"expect {claims.tee}:<hex> or give reference values (--expect-reference FILE)"
            )
        if tee != claims.tee:
            raise AttestationError(
                f"the CAS runs on {claims.tee}, the expected measurement is for {tee}"
            )
        if not constant_time_equal(claims.measurement, measurement):
            raise AttestationError(
                f"the CAS's measurement is {pin_measurement(claims)}, "
                f"the expected one is {tee}:{measurement.hex()}"
            )
    if refs is not None:
        named = named_tees(refs)
        if claims.tee not in named:
            raise AttestationError(
                f"the CAS runs on {claims.tee}, the expected reference values are for "
                f"{', '.join(named)}"
            )
        try:
            check_references(claims, refs)
        except AttestationError as exc:
            raise AttestationError(
                f"the CAS's code is not the one the expected reference values name: {exc}"
            ) from None


def reference_json(reference: Mapping[str, Any]) -> str:
    """Reference values as one line of JSON (the form ``expect_reference`` takes)."""
    return json.dumps(dict(reference), sort_keys=True)

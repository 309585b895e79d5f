"""Verified claims: what a verifier vouches for after checking a piece of evidence.

A :class:`Claims` only ever comes out of a verifier (or a test); appraisal against a policy
is a separate step (:mod:`securetf.attestation.appraisal`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from securetf.errors import UsageError

__all__ = ["REPORT_DATA_SIZE", "TEES", "TEST_ROOTS", "Claims", "check_tee"]

TEES = ("sim", "sgx", "tdx", "sev-snp")
TEST_ROOTS = "test-roots"
"""Named in a policy's ``tee.allow`` to accept hardware evidence chained to securetf's test
roots (emulated hardware), which, like ``sim``, protects nothing."""
REPORT_DATA_SIZE = 64


def check_tee(tee: str) -> str:
    """Return ``tee`` if it names a TEE securetf knows; a :class:`UsageError` otherwise."""
    if tee not in TEES:
        raise UsageError(f"unknown TEE {tee!r}; choose one of {', '.join(TEES)}")
    return tee


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Claims:
    """What one piece of evidence proved.

    - ``measurement``: the main code identity: MRENCLAVE (sgx), MRTD (tdx), the launch
      measurement (sev-snp), or the service measurement (sim).
    - ``measurements``: the other identities, by name (``mrsigner``, ``rtmr0``..``rtmr3``,
      ``host_data``, ``isv_prod_id``...), as bytes.
    - ``signer``: who vouched for the evidence (platform key, PCK, VCEK), as text.
    - ``tcb_status``: the vendor's TCB verdict in Intel's spelling (``UpToDate``...);
      see docs/attestation.md for what it means for each TEE.
    - ``tcb``: TCB version numbers (``snp``, ``microcode``, ``isv_svn``...).
    - ``test_roots``: the evidence chains to a test root the verifier was given (emulated
      hardware), not to the vendor's; appraisal refuses it unless the policy names
      ``test-roots``.
    """

    tee: str
    measurement: bytes
    report_data: bytes
    signer: str
    tcb_status: str
    advisories: tuple[str, ...] = ()
    debug: bool = False
    measurements: Mapping[str, bytes] = field(default_factory=dict)
    tcb: Mapping[str, int] = field(default_factory=dict)
    timestamp: int | None = None
    test_roots: bool = False

    def __post_init__(self) -> None:
        check_tee(self.tee)
        if len(self.report_data) != REPORT_DATA_SIZE:
            raise UsageError(
                f"report data is {REPORT_DATA_SIZE} bytes, got {len(self.report_data)}"
            )
        object.__setattr__(self, "advisories", tuple(self.advisories))
        object.__setattr__(self, "measurements", _frozen(self.measurements))
        object.__setattr__(self, "tcb", _frozen(self.tcb))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; bytes become lowercase hex."""
        return {
            "tee": self.tee,
            "measurement": self.measurement.hex(),
            "report_data": self.report_data.hex(),
            "signer": self.signer,
            "status": self.tcb_status,
            "advisories": list(self.advisories),
            "debug": self.debug,
            "measurements": {k: v.hex() for k, v in sorted(self.measurements.items())},
            "tcb": dict(sorted(self.tcb.items())),
            "timestamp": self.timestamp,
            "roots": "test" if self.test_roots else "vendor",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

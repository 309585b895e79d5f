"""Reference values: which image a TEE's evidence must show, per TEE. Pure: no I/O, no clock.

A policy names, for each hardware TEE it allows, one or more sets of reference values
(docs/policy.md, ``tee.sgx``, ``tee.tdx``, ``tee.sev-snp``); evidence passes when it matches
every value of at least one set. The sets are read through the small protocols below, so
this module needs nothing from the policy package; :func:`reference_values` prints the
claims under the same names, so that what ``securetf attest verify --json`` shows can be
pasted into a policy.

Debug mode is refused before this step (:func:`securetf.attestation.tcb.appraise_platform`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from securetf.attestation.claims import Claims
from securetf.attestation.rtmr import replay_rtmr
from securetf.crypto import constant_time_equal
from securetf.errors import AttestationError

__all__ = [
    "SNP_POLICY_SMT",
    "SgxValues",
    "SnpTcbValues",
    "SnpValues",
    "TdxValues",
    "TeeReferences",
    "check_references",
    "reference_values",
]

SNP_POLICY_SMT = 1 << 16  # guest policy: the guest may run with SMT enabled
_SNP_TCB_PARTS = ("bootloader", "tee", "snp", "microcode", "fmc")


# The policy's frozen models satisfy these. Members whose type the models narrow (a tuple
# for a sequence, a model for a protocol) are read-only properties, the others attributes.
class SgxValues(Protocol):
    mr_enclave: str | None
    mr_signer: str | None
    isv_prod_id: int | None
    min_isv_svn: int | None


class TdxValues(Protocol):
    mr_td: str
    rtmr0: str
    rtmr1: str
    rtmr2: str
    rtmr3: str
    mr_config_id: str | None
    mr_owner: str | None


class SnpTcbValues(Protocol):
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None


class SnpValues(Protocol):
    measurement: str
    allow_smt: bool
    host_data: str | None

    @property
    def min_tcb(self) -> SnpTcbValues: ...
    @property
    def vmpl(self) -> Collection[int]: ...


class TeeReferences(Protocol):
    @property
    def sgx(self) -> Sequence[SgxValues]: ...
    @property
    def tdx(self) -> Sequence[TdxValues]: ...
    @property
    def sev_snp(self) -> Sequence[SnpValues]: ...


def _differs(name: str, actual: bytes, expected_hex: str) -> str | None:
    if constant_time_equal(actual, bytes.fromhex(expected_hex)):
        return None
    return f"{name} is {actual.hex()}, the policy expects {expected_hex}"


def _sgx(claims: Claims, ref: SgxValues) -> list[str]:
    found: list[str | None] = []
    if ref.mr_enclave is not None:
        found.append(_differs("mr_enclave", claims.measurement, ref.mr_enclave))
    if ref.mr_signer is not None:
        found.append(_differs("mr_signer", claims.measurements["mrsigner"], ref.mr_signer))
    if ref.isv_prod_id is not None and claims.tcb["isv_prod_id"] != ref.isv_prod_id:
        found.append(
            f"isv_prod_id is {claims.tcb['isv_prod_id']}, the policy expects {ref.isv_prod_id}"
        )
    if ref.min_isv_svn is not None and claims.tcb["isv_svn"] < ref.min_isv_svn:
        found.append(
            f"isv_svn {claims.tcb['isv_svn']} is below the policy's min_isv_svn {ref.min_isv_svn}"
        )
    return [f for f in found if f]


def _tdx(claims: Claims, ref: TdxValues, rtmr3_events: Sequence[bytes]) -> list[str]:
    m = claims.measurements
    found = [_differs("mr_td", claims.measurement, ref.mr_td)]
    found += [_differs(f"rtmr{i}", m[f"rtmr{i}"], getattr(ref, f"rtmr{i}")) for i in range(3)]
    if rtmr3_events:
        # The policy's rtmr3 is the value at boot; the runtime's events extend it.
        boot = bytes.fromhex(ref.rtmr3)
        replayed = replay_rtmr(rtmr3_events, boot).hex()
        if _differs("rtmr3", m["rtmr3"], replayed) is not None:
            found.append(
                f"rtmr3 is {m['rtmr3'].hex()}, not the policy's rtmr3 {ref.rtmr3} extended by "
                f"the {len(rtmr3_events)} event(s) of the runtime's log ({replayed})"
            )
    else:
        found.append(_differs("rtmr3", m["rtmr3"], ref.rtmr3))
    for name in ("mr_config_id", "mr_owner"):
        expected = getattr(ref, name)
        if expected is not None:
            found.append(_differs(name, m[name], expected))
    return [f for f in found if f]


def _snp(claims: Claims, ref: SnpValues) -> list[str]:
    found = [_differs("measurement", claims.measurement, ref.measurement)]
    for part in _SNP_TCB_PARTS:
        minimum = getattr(ref.min_tcb, part)
        actual = claims.tcb.get(f"reported_{part}")
        if minimum is not None and (actual is None or actual < minimum):
            found.append(
                f"the reported TCB's {part} {actual} is below the policy's min_tcb.{part} {minimum}"
            )
    if claims.tcb["policy"] & SNP_POLICY_SMT and not ref.allow_smt:
        found.append("the guest policy allows SMT, and the policy says allow_smt: false")
    if claims.tcb["vmpl"] not in ref.vmpl:
        found.append(f"vmpl {claims.tcb['vmpl']} is not among the policy's vmpl {sorted(ref.vmpl)}")
    if ref.host_data is not None:
        found.append(_differs("host_data", claims.measurements["host_data"], ref.host_data))
    return [f for f in found if f]


def check_references(
    claims: Claims, references: TeeReferences, *, rtmr3_events: Sequence[bytes] = ()
) -> Claims:
    """Return ``claims`` if they match one of the policy's sets for their TEE; raise otherwise.

    An empty list for the TEE matches nothing (a policy that allows a TEE but names no image
    for it fails closed). ``rtmr3_events`` (TDX): the digests the runtime extended RTMR3
    with, in order; the policy's ``rtmr3`` is then the register's value before them.
    """
    # The problems of each set, in the policy's order.
    if claims.tee == "sgx":
        found = [_sgx(claims, ref) for ref in references.sgx]
    elif claims.tee == "tdx":
        found = [_tdx(claims, ref, rtmr3_events) for ref in references.tdx]
    elif claims.tee == "sev-snp":
        found = [_snp(claims, ref) for ref in references.sev_snp]
    else:
        raise AttestationError(f"TEE {claims.tee} has no reference values to compare")
    if not found:
        raise AttestationError(
            f"the policy names no reference values for {claims.tee}, so no {claims.tee} "
            f"evidence can match; add tee.{claims.tee} with the values "
            "`securetf attest verify --json` prints under reference"
        )
    if any(not problems for problems in found):
        return claims
    reasons = [
        (f"tee.{claims.tee}[{index}]: " if len(found) > 1 else "") + "; ".join(problems)
        for index, problems in enumerate(found)
    ]
    raise AttestationError(
        f"the {claims.tee} evidence matches no reference values of the policy: "
        + " | ".join(reasons)
    )


def reference_values(claims: Claims) -> dict[str, Any]:
    """The claims as one set of reference values under the policy's names (hex, ints)."""
    m, tcb = claims.measurements, claims.tcb
    if claims.tee == "sgx":
        return {
            "mr_enclave": claims.measurement.hex(),
            "mr_signer": m["mrsigner"].hex(),
            "isv_prod_id": tcb["isv_prod_id"],
            "min_isv_svn": tcb["isv_svn"],
        }
    if claims.tee == "tdx":
        values = {"mr_td": claims.measurement.hex()}
        values.update({f"rtmr{i}": m[f"rtmr{i}"].hex() for i in range(4)})
        values.update(mr_config_id=m["mr_config_id"].hex(), mr_owner=m["mr_owner"].hex())
        return values
    if claims.tee == "sev-snp":
        min_tcb = {p: tcb[f"reported_{p}"] for p in _SNP_TCB_PARTS if f"reported_{p}" in tcb}
        return {
            "measurement": claims.measurement.hex(),
            "min_tcb": min_tcb,
            "allow_smt": bool(tcb["policy"] & SNP_POLICY_SMT),
            "vmpl": [tcb["vmpl"]],
            "host_data": m["host_data"].hex(),
        }
    return {}

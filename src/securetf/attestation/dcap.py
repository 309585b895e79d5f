"""Intel SGX and TDX DCAP quotes: verified with dcap-qvl against given collateral.

Steps:

1. Layout: every size and the PCK chain's encoding are exact, and the chain ends in the
   trusted root (:mod:`._dcap_layout`).
2. The quote is of the TEE the caller asked for.
3. If the collateral carries its own PCK chain, it is the quote's chain.
4. dcap-qvl at ``now``: QE and quote signatures, PCK chain to the trusted root, CRLs,
   TCB info and QE identity (signatures, validity), giving the TCB status and advisories.
5. Claims from the report body of the exact bytes verified.

The trusted root is the bundled Intel SGX Root CA unless the caller names another one:
emulated hardware (:mod:`securetf.attestation.emulated.intel`) chains to a test root, and
verifying it runs this same code with that root. Claims verified against a non-Intel root
say so (``test_roots``, which appraisal refuses unless the policy names ``test-roots``), and
the verification is logged loudly: such evidence proves nothing about real hardware.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

from securetf._logutil import warn_loudly
from securetf.attestation import _dcap_binding
from securetf.attestation._dcap_layout import INTEL_ROOT, TEE_SGX, TEE_TDX, check_quote_layout
from securetf.attestation.claims import Claims
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError

__all__ = ["Collateral", "fetch_collateral", "verify_dcap"]

_log = logging.getLogger(__name__)

_TEE_TYPES = {"sgx": TEE_SGX, "tdx": TEE_TDX}
_SGX_DEBUG = 0x02  # ATTRIBUTES.DEBUG, bit 1 of the first byte
_TD_DEBUG = 0x01  # TDATTRIBUTES.DEBUG, bit 0
_DCAP_QVL_DEBUG = "Debug mode is enabled"
_DEBUG_BITS = {"sgx": "SGX ATTRIBUTES.DEBUG is set", "tdx": "TDX TD_ATTRIBUTES.DEBUG is set"}
_SGX_OTHERS = {"mrsigner": "mr_signer", "attributes": "attributes", "cpu_svn": "cpu_svn"}
_TDX_OTHERS = (
    *("mr_seam", "mr_signer_seam", "mr_config_id", "mr_owner", "mr_owner_config"),
    *("td_attributes", "xfam", "tee_tcb_svn", "tee_tcb_svn2", "mr_service_td"),
)
MAX_COLLATERAL_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Collateral:
    """PCS collateral for one quote, in dcap-qvl's JSON form (as ``get_collateral`` writes)."""

    native: Any
    pck_chain: tuple[Certificate, ...] | None

    @classmethod
    def load(cls, data: bytes) -> Collateral:
        if len(data) > MAX_COLLATERAL_SIZE:
            raise UsageError(f"collateral is larger than {MAX_COLLATERAL_SIZE} bytes")
        try:
            text = data.decode("utf-8")
            fields = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"collateral is not JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise UsageError("collateral is not a JSON object")
        chain = fields.get("pck_certificate_chain")
        pck_chain = None
        if chain is not None:
            if not isinstance(chain, str):
                raise UsageError("collateral's pck_certificate_chain is not a PEM string")
            pck_chain = tuple(Certificate.load_pem_chain(chain.encode(), what="collateral PCK"))
        try:
            native = _dcap_binding.parse_collateral(text)
        except AttestationError as exc:
            raise UsageError(str(exc)) from None
        return cls(native=native, pck_chain=pck_chain)


def fetch_collateral(quote: bytes, pccs_url: str) -> Collateral:
    """Fetch collateral from a PCCS (network I/O; call it outside the trust decision)."""
    return Collateral.load(_dcap_binding.fetch_collateral_json(quote, pccs_url).encode())


def verify_dcap(
    quote: bytes,
    collateral: Collateral,
    *,
    tee: str,
    now: int,
    root: Certificate | None = None,
) -> Claims:
    """Verify an SGX or TDX quote at ``now``; return its claims or raise AttestationError.

    ``root`` is the trust anchor every chain must end in (PCK, TCB info, QE identity, CRLs);
    the default is the bundled Intel SGX Root CA. Claims verified against any other root
    have ``test_roots`` set.
    """
    if tee not in _TEE_TYPES:
        raise UsageError(f"DCAP quotes are sgx or tdx, not {tee!r}")
    trusted = INTEL_ROOT if root is None else root
    if trusted != INTEL_ROOT:
        warn_loudly(
            _log,
            "verifying %s quotes against the non-Intel root %r: they prove nothing about real "
            "hardware (test roots are for emulated TEEs only)",
            tee,
            trusted.subject_cn,
        )
    # 1. Layout.
    layout = check_quote_layout(quote, root=trusted)
    # 2. TEE type.
    if layout.tee_type != _TEE_TYPES[tee]:
        actual = "tdx" if layout.tee_type == TEE_TDX else "sgx"
        raise AttestationError(f"this is a {actual} quote, not {tee}; use --tee {actual}")
    # 3. One PCK chain.
    if collateral.pck_chain is not None and collateral.pck_chain != layout.pck_chain:
        raise AttestationError("the collateral's PCK certificate chain is not the quote's")
    # 4. Signatures, chain, collateral, TCB.
    try:
        verdict = _dcap_binding.verify(quote, collateral.native, trusted.der, now)
    except AttestationError as exc:
        # dcap-qvl refuses debug enclaves and TDs itself; say which bit, as appraisal would.
        if _DCAP_QVL_DEBUG in str(exc) and "QE report" not in str(exc):
            raise AttestationError(
                f"{exc}: the quote comes from a debug-mode TEE ({_DEBUG_BITS[tee]}), whose "
                "memory the host can read; DCAP verification never accepts it"
            ) from None
        raise
    # 5. Claims.
    fields = _dcap_binding.report_fields(quote)
    signer = f"intel-pck:ppid={verdict.ppid.hex()}"
    if tee == "sgx":
        body = quote[layout.body_offset : layout.body_offset + layout.body_size]
        isv_prod_id, isv_svn = struct.unpack_from("<HH", body, 256)
        measurement = fields["mr_enclave"]
        others = {k: fields[v] for k, v in _SGX_OTHERS.items()}
        numbers = {"isv_prod_id": isv_prod_id, "isv_svn": isv_svn}
        debug = bool(fields["attributes"][0] & _SGX_DEBUG)
    else:
        measurement = fields["mr_td"]
        others = {name: fields[name] for name in _TDX_OTHERS if name in fields}
        others.update({f"rtmr{i}": fields[f"rt_mr{i}"] for i in range(4)})
        numbers = {}
        debug = bool(fields["td_attributes"][0] & _TD_DEBUG)
    return Claims(
        tee=tee,
        measurement=measurement,
        report_data=fields["report_data"],
        signer=signer,
        tcb_status=verdict.status,
        advisories=verdict.advisories,
        debug=debug,
        measurements=others,
        tcb=numbers,
        test_roots=trusted != INTEL_ROOT,
    )

"""TCB info (v3) and QE identity (v2) of the emulated Intel platform, signed as Intel signs.

Intel's signature is ECDSA P-256/SHA-256 as raw ``r || s`` (64 bytes, hex in the PCS
response) over the exact bytes of the inner JSON object (``tcbInfo`` / ``enclaveIdentity``).
dcap-qvl re-serializes that object compactly, keeping the key order, before checking the
signature; so the signed text here is compact JSON in a fixed key order, and every carrier
(collateral JSON, PCCS response) embeds these exact bytes.

Two platform TCB levels exist, so a test can make an up-to-date and an out-of-date platform:
the PCK certificate states one of them, and the TCB info maps it to a status.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from securetf.attestation.emulated._intel_certs import Validity
from securetf.attestation.emulated._intel_pck import PckTcb
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError

__all__ = [
    "LEVELS",
    "OUT_OF_DATE",
    "QE_ATTRIBUTES",
    "QE_IDENTITIES",
    "TDX_MODULE_VERSION",
    "UP_TO_DATE",
    "QeIdentity",
    "TcbLevel",
    "check_tee",
    "qe_identity_text",
    "sign_raw",
    "tcb_info_text",
]

UP_TO_DATE = "up-to-date"
OUT_OF_DATE = "out-of-date"
_TEE_IDS = {"sgx": ("SGX", "QE"), "tdx": ("TDX", "TD_QE")}
_EVALUATION_NUMBER = 17
_PCE_ID = "0000"
# TDX module major version (TEE_TCB_SVN[1]): selects the tdxModuleIdentities entry.
TDX_MODULE_VERSION = 1
_ZEROS_48 = "00" * 48


def _svns(*head: int) -> tuple[int, ...]:
    return head + (0,) * (16 - len(head))


@dataclass(frozen=True)
class TcbLevel:
    """One platform TCB level: what the PCK certificate states and what Intel says of it."""

    pck: PckTcb
    tdx_components: tuple[int, ...]  # minimum TEE_TCB_SVN of a TD on this level
    tdx_module_svn: int  # minimum TDX module SVN (TEE_TCB_SVN[0]) for the module's status
    status: str
    advisories: tuple[str, ...]
    date: str


LEVELS = {
    UP_TO_DATE: TcbLevel(
        PckTcb(_svns(4, 4, 3, 3, 2, 1, 0, 5), 13),
        _svns(5, 0, 2),
        5,
        "UpToDate",
        (),
        "2025-01-15T00:00:00Z",
    ),
    OUT_OF_DATE: TcbLevel(
        PckTcb(_svns(3, 3, 2, 2, 2, 1, 0, 3), 11),
        _svns(3, 0, 1),
        3,
        "OutOfDate",
        ("INTEL-SA-TEST1",),
        "2023-08-09T00:00:00Z",
    ),
}


@dataclass(frozen=True)
class QeIdentity:
    """The quoting enclave of one TEE type: what its report says and Intel's identity."""

    id: str
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int


# INIT | MODE64BIT | PROVISIONKEY, XFRM 0xE7: what Intel's QEs report (never DEBUG).
QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")
QE_IDENTITIES = {
    tee: QeIdentity(
        qe_id,
        hashlib.sha256(f"securetf TEST {qe_id} enclave".encode()).digest(),
        hashlib.sha256(f"securetf TEST {qe_id} signer".encode()).digest(),
        prod_id,
        svn,
    )
    for tee, (qe_id, prod_id, svn) in {"sgx": ("QE", 1, 8), "tdx": ("TD_QE", 2, 4)}.items()
}


def check_tee(tee: str) -> str:
    if tee not in _TEE_IDS:
        raise UsageError(f"emulated Intel hardware is sgx or tdx, not {tee!r}")
    return tee


def _iso(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _components(svns: tuple[int, ...]) -> list[dict[str, int]]:
    return [{"svn": svn} for svn in svns]


def _tcb_level(level: TcbLevel, tee: str) -> dict[str, Any]:
    tcb: dict[str, Any] = {
        "sgxtcbcomponents": _components(level.pck.components),
        "pcesvn": level.pck.pce_svn,
    }
    if tee == "tdx":
        tcb["tdxtcbcomponents"] = _components(level.tdx_components)
    entry: dict[str, Any] = {"tcb": tcb, "tcbDate": level.date, "tcbStatus": level.status}
    if level.advisories:
        entry["advisoryIDs"] = list(level.advisories)
    return entry


def _tdx_module_fields() -> dict[str, Any]:
    """The TDX module's identity: a zero MRSIGNER_SEAM and SEAMATTRIBUTES, as Intel's."""
    module = {"mrsigner": _ZEROS_48, "attributes": "00" * 8, "attributesMask": "FF" * 8}
    levels = [
        {
            "tcb": {"isvsvn": level.tdx_module_svn},
            "tcbDate": level.date,
            "tcbStatus": level.status,
        }
        for level in LEVELS.values()
    ]
    identity = {"id": f"TDX_{TDX_MODULE_VERSION:02X}", **module, "tcbLevels": levels}
    return {"tdxModule": module, "tdxModuleIdentities": [identity]}


def tcb_info_text(tee: str, fmspc: bytes, validity: Validity) -> str:
    """The TCB info (v3) of the platform ``fmspc``, for ``tee``: the exact bytes to sign."""
    info: dict[str, Any] = {
        "id": _TEE_IDS[check_tee(tee)][0],
        "version": 3,
        "issueDate": _iso(validity.not_before),
        "nextUpdate": _iso(validity.not_after),
        "fmspc": fmspc.hex().upper(),
        "pceId": _PCE_ID,
        "tcbType": 0,
        "tcbEvaluationDataNumber": _EVALUATION_NUMBER,
    }
    if tee == "tdx":
        info.update(_tdx_module_fields())
    info["tcbLevels"] = [_tcb_level(level, tee) for level in LEVELS.values()]
    return _compact(info)


def qe_identity_text(tee: str, validity: Validity) -> str:
    """The QE identity (v2) of ``tee``'s quoting enclave: the exact bytes to sign."""
    qe = QE_IDENTITIES[check_tee(tee)]
    identity = {
        "id": qe.id,
        "version": 2,
        "issueDate": _iso(validity.not_before),
        "nextUpdate": _iso(validity.not_after),
        "tcbEvaluationDataNumber": _EVALUATION_NUMBER,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11" + "00" * 15,
        "attributesMask": "FBFFFFFFFFFFFFFF" + "00" * 8,
        "mrsigner": qe.mr_signer.hex().upper(),
        "isvprodid": qe.isv_prod_id,
        "tcbLevels": [
            {
                "tcb": {"isvsvn": qe.isv_svn},
                "tcbDate": LEVELS[UP_TO_DATE].date,
                "tcbStatus": "UpToDate",
            }
        ],
    }
    return _compact(identity)


def sign_raw(key: EcKey, message: bytes) -> bytes:
    """ECDSA P-256/SHA-256 of ``message`` as Intel's raw ``r || s`` (32 bytes each)."""
    r, s = decode_dss_signature(key.sign(message))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")

"""The one module that calls dcap-qvl: typed wrappers that turn its errors into ours.

dcap-qvl ships no ``py.typed`` marker, so it is imported untyped here and every value that
leaves this module has a checked Python type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dcap_qvl  # type: ignore[import-untyped]

from securetf.errors import AttestationError

__all__ = ["DcapVerdict", "fetch_collateral_json", "parse_collateral", "report_fields", "verify"]

T = TypeVar("T")

_EXPIRY_WORDS = ("expired", "in the future", "not yet valid")


def _call(what: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
        message = str(exc) or type(exc).__name__
        hint = ""
        if any(word in message.lower() for word in _EXPIRY_WORDS):
            hint = (
                " (collateral or certificates are not valid at the given time: fetch fresh "
                "collateral, or check --now)"
            )
        raise AttestationError(f"{what}: {message}{hint}") from None


@dataclass(frozen=True)
class DcapVerdict:
    status: str
    advisories: tuple[str, ...]
    ppid: bytes


def parse_collateral(collateral_json: str) -> Any:
    """dcap-qvl's collateral object (opaque outside this package)."""
    return _call(
        "collateral is not valid dcap-qvl JSON",
        dcap_qvl.QuoteCollateralV3.from_json,
        collateral_json,
    )


def verify(raw: bytes, collateral: Any, root_der: bytes, now: int) -> DcapVerdict:
    """Signatures, PCK chain to ``root_der``, CRLs, TCB info and QE identity at ``now``."""
    report = _call(
        "DCAP quote verification failed",
        dcap_qvl.verify_with_root_ca,
        raw,
        collateral,
        root_der,
        now,
    )
    status, advisories, ppid = report.status, report.advisory_ids, report.ppid
    if not isinstance(status, str) or not isinstance(ppid, bytes):
        raise AttestationError("dcap-qvl returned a report securetf does not understand")
    if not all(isinstance(a, str) for a in advisories):
        raise AttestationError("dcap-qvl returned advisories securetf does not understand")
    return DcapVerdict(status=status, advisories=tuple(advisories), ppid=ppid)


_REPORT_FIELDS = (
    *("mr_enclave", "mr_signer", "attributes", "cpu_svn", "report_data"),
    *("mr_td", "mr_seam", "mr_signer_seam", "mr_config_id", "mr_owner", "mr_owner_config"),
    *("rt_mr0", "rt_mr1", "rt_mr2", "rt_mr3", "td_attributes", "xfam"),
    *("tee_tcb_svn", "tee_tcb_svn2", "mr_service_td"),
)


def report_fields(raw: bytes) -> dict[str, bytes]:
    """The report body's fields by dcap-qvl's names (only those this body type has)."""
    report = _call("quote cannot be parsed", dcap_qvl.parse_quote, raw).report
    fields: dict[str, bytes] = {}
    for name in _REPORT_FIELDS:
        value = getattr(report, name, None)
        if isinstance(value, bytes):
            fields[name] = value
    return fields


async def _get_collateral(raw: bytes, pccs_url: str) -> Any:
    # dcap-qvl's future needs a running event loop when it is created, not only when awaited.
    return await dcap_qvl.get_collateral(pccs_url, raw)


def fetch_collateral_json(raw: bytes, pccs_url: str) -> str:
    """Fetch collateral for ``raw`` from a PCCS/PCS (network I/O: never in trust logic)."""
    import asyncio  # here: every securetf run would pay for its import, for a rare fetch

    collateral = _call(
        f"cannot fetch collateral from {pccs_url}",
        lambda: asyncio.run(_get_collateral(raw, pccs_url)),
    )
    text = _call("cannot serialize collateral", collateral.to_json)
    if not isinstance(text, str):
        raise AttestationError("dcap-qvl returned collateral securetf does not understand")
    return text

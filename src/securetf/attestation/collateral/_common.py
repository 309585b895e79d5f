"""What the collateral modules share: limits, hints and key formats."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from securetf.attestation._dcap_layout import TEE_SGX, TEE_TDX
from securetf.attestation.dcap import MAX_COLLATERAL_SIZE, Collateral

_log = logging.getLogger("securetf.attestation.collateral")

BUNDLE_VERSION = 1
MAX_BUNDLE_SIZE = 64 * 1024 * 1024
MAX_VCEK_SIZE = 16 * 1024
_CACHE_VERSION = 1
# A cache entry is the collateral plus a few short fields.
_MAX_CACHE_ENTRY = MAX_COLLATERAL_SIZE + 4096

#: Fetches DCAP collateral: ``(quote, pccs_url) -> Collateral`` (network I/O).
DcapFetcher = Callable[[bytes, str], Collateral]
#: Fetches a VCEK: ``(kds_url, report) -> VCEK DER`` (network I/O).
VcekFetcher = Callable[[str, bytes], bytes]

_DCAP_TEES = {"sgx": TEE_SGX, "tdx": TEE_TDX}
_PCCS_HINT = "configure --pccs / SECURETF_PCCS_URL"
_KDS_HINT = "configure --kds / SECURETF_KDS_URL"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHIP_ID_SIZE = 64
_TCB_SIZE = 8


def _when(t: int) -> str:
    """``t`` (unix seconds) as ISO 8601 UTC."""
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"unix time {t}"

"""Evidence as it leaves a TEE, and the interface every producer implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from securetf.attestation.claims import REPORT_DATA_SIZE, check_tee
from securetf.errors import UsageError

__all__ = ["Evidence", "Producer", "check_report_data"]


@dataclass(frozen=True)
class Evidence:
    """Raw evidence from one TEE: a sim token, a DCAP quote or an SNP report.

    ``aux`` holds what the TEE hands out beside the evidence, if anything: for SEV-SNP the
    certificate table of configfs-tsm's ``auxblob`` (it may carry the VCEK).
    """

    tee: str
    data: bytes
    aux: bytes = b""

    def __post_init__(self) -> None:
        check_tee(self.tee)


class Producer(Protocol):
    """Runs inside a TEE and asks it for evidence that binds ``report_data``."""

    @property
    def tee(self) -> str: ...

    def evidence(self, report_data: bytes) -> Evidence: ...


def check_report_data(report_data: bytes) -> bytes:
    """Producers take exactly 64 bytes of report data (a hash of nonce and key, padded)."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise UsageError(f"report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
    return report_data

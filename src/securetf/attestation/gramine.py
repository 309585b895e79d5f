"""SGX evidence inside a Gramine enclave, through its /dev/attestation pseudo-files.

Gramine's interface: ``attestation_type`` reads ``dcap`` when DCAP quotes are available;
writing 64 bytes to ``user_report_data`` sets the report data of the next quote; reading
``quote`` returns a DCAP quote over it.
"""

from __future__ import annotations

from pathlib import Path

from securetf.attestation.evidence import Evidence, check_report_data
from securetf.errors import AttestationError

__all__ = ["GRAMINE_ROOT", "GramineProducer", "gramine_available"]

GRAMINE_ROOT = Path("/dev/attestation")


def gramine_available(root: Path = GRAMINE_ROOT) -> bool:
    """True when ``root`` offers DCAP quotes (a probe for autodetection, not a trust check)."""
    try:
        return (root / "attestation_type").read_text().strip() == "dcap"
    except (OSError, UnicodeDecodeError):
        return False


class GramineProducer:
    """Produces SGX DCAP quotes through Gramine; ``root`` is injectable for tests."""

    tee = "sgx"

    def __init__(self, *, root: Path = GRAMINE_ROOT) -> None:
        self._root = root

    def evidence(self, report_data: bytes) -> Evidence:
        check_report_data(report_data)
        if not gramine_available(self._root):
            raise AttestationError(
                f"no DCAP attestation at {self._root}: not inside a Gramine SGX enclave "
                'with sgx.remote_attestation = "dcap"'
            )
        try:
            (self._root / "user_report_data").write_bytes(report_data)
            quote = (self._root / "quote").read_bytes()
        except OSError as exc:
            raise AttestationError(f"Gramine attestation failed: {exc.strerror}") from None
        if not quote:
            raise AttestationError("Gramine returned an empty quote")
        return Evidence(tee="sgx", data=quote)

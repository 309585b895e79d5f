"""The real evidence in ../shared/testvectors/attestation, and when each one verifies.

The directory is referenced in place (never copied): see its PROVENANCE.md. Every read goes
through ``vector``, so a test on a clone without ../shared skips (fails under CI): see
tests/shared.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from securetf.attestation import Collateral, decode_evidence
from tests.shared import shared_file


def vector(name: str) -> Path:
    """The path of one file of the real evidence (``sgx/quote.bin``), or skip/fail the test."""
    return shared_file("testvectors", "attestation", name)


@cache
def vector_bytes(name: str) -> bytes:
    return vector(name).read_bytes()


@dataclass(frozen=True)
class DcapVector:
    name: str
    tee: str
    quote_file: str
    collateral_file: str
    at: int
    status: str
    advisories: tuple[str, ...]
    measurement: str

    @property
    def quote(self) -> bytes:
        return vector_bytes(self.quote_file)

    @property
    def collateral(self) -> Collateral:
        return Collateral.load(vector_bytes(self.collateral_file))


DCAP = [
    DcapVector(
        "sgx-v3",
        "sgx",
        "sgx/quote.bin",
        "sgx/collateral.json",
        1750330571,
        "ConfigurationAndSWHardeningNeeded",
        ("INTEL-SA-00289", "INTEL-SA-00615"),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
    ),
    DcapVector(
        "tdx-v4",
        "tdx",
        "tdx/quote-v4.bin",
        "tdx/collateral-v4.json",
        1750329147,
        "UpToDate",
        (),
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
        "de03ae6dc5f87f27428b2538873118b7",
    ),
    DcapVector(
        "tdx-v5",
        "tdx",
        "tdx/quote-v5-td15ex.bin",
        "tdx/collateral-v5-td15ex.json",
        1791418186,
        "UpToDate",
        (),
        "2a674327c50218dba880066b349b8d559d749ed68dce33fd651c184a877d084b"
        "07a9e583767a7ad5da13ed91deec2b70",
    ),
]

SNP_REPORT_FILE = "snp/report-milan.hex"
SNP_VCEK_FILE = "snp/vcek-milan.der"
# SNP reports have no expiring collateral: the VCEK's validity (2023-04-03 to 2030-04-03)
# bounds when the report verifies. Any time inside works; this one is fixed for repeatability.
SNP_AT = 1750000000
SNP_MEASUREMENT = (
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b5"
    "79ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
)


@cache
def snp_report() -> bytes:
    return decode_evidence(vector_bytes(SNP_REPORT_FILE))


def snp_vcek() -> bytes:
    return vector_bytes(SNP_VCEK_FILE)

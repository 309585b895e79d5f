"""Attestation: evidence verifications per second on one core, for each evidence type,
each beside the bare signature check it is built on, measured in the same run.

Run: python -m benchmarks.run attestation   (or ``make bench``)

The real evidence from ../shared/testvectors/attestation is verified at its documented
time, so SGX/TDX collateral is in date. A full verification of an SNP report checks the
VCEK chain (three RSA-4096 PSS signatures) and the report's ECDSA P-384 signature; a DCAP
verification checks the layout, the PCK chain, CRLs, TCB info and QE identity.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks._common import Row, median_of
from securetf.attestation import (
    Collateral,
    _dcap_binding,
    decode_evidence,
    verify_dcap,
    verify_sim,
    verify_snp,
)
from securetf.attestation._dcap_layout import INTEL_ROOT
from securetf.attestation.sim import sign_sim_evidence
from securetf.attestation.snp_report import SnpReport
from securetf.crypto import Certificate, SigningKey, verify_ecdsa_p384_sha384

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "testvectors" / "attestation"
DCAP = [
    ("sgx", "sgx/quote.bin", "sgx/collateral.json", 1750330571),
    ("tdx", "tdx/quote-v4.bin", "tdx/collateral-v4.json", 1750329147),
    ("tdx", "tdx/quote-v5-td15ex.bin", "tdx/collateral-v5-td15ex.json", 1791418186),
]
SNP_AT = 1750000000
ROUNDS = 300
UNIT = "verifications/s"


@contextlib.contextmanager
def _one_core() -> Iterator[None]:
    """Pin this process to a single CPU for the measurement, then restore its affinity."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _quiet_sim() -> Iterator[None]:
    """Drop the per-verification sim warning: thousands of identical lines say nothing."""
    logger = logging.getLogger("securetf.attestation.sim")
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


def _rate(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    def loop() -> None:
        for _ in range(rounds):
            fn()

    return rounds / median_of(loop)


def _sim() -> Row:
    key = SigningKey.generate()
    evidence = sign_sim_evidence(key, measurement=bytes(32), report_data=bytes(64), timestamp=0)
    trusted = frozenset({key.verify_key()})
    vk = key.verify_key()
    body, sig = evidence[:144], evidence[144:]
    return Row(
        "attestation",
        "verify sim evidence",
        _rate(lambda: verify_sim(evidence, trusted=trusted, now=0), rounds=3000),
        UNIT,
        "bare Ed25519 verify",
        _rate(lambda: vk.verify(sig, body), rounds=3000),
    )


def _dcap(tee: str, quote_file: str, collateral_file: str, at: int) -> Row:
    quote = (VECTORS / quote_file).read_bytes()
    collateral = Collateral.load((VECTORS / collateral_file).read_bytes())
    return Row(
        "attestation",
        f"verify {tee} quote ({Path(quote_file).name})",
        _rate(lambda: verify_dcap(quote, collateral, tee=tee, now=at)),
        UNIT,
        "dcap-qvl verify alone",
        _rate(lambda: _dcap_binding.verify(quote, collateral.native, INTEL_ROOT.der, at)),
    )


def _snp() -> Row:
    report = decode_evidence((VECTORS / "snp" / "report-milan.hex").read_bytes())
    vcek = (VECTORS / "snp" / "vcek-milan.der").read_bytes()
    parsed = SnpReport.parse(report)
    key = Certificate.load(vcek).public_key_der()
    return Row(
        "attestation",
        "verify sev-snp report (chain + signature)",
        _rate(lambda: verify_snp(report, vcek, now=SNP_AT)),
        UNIT,
        "bare ECDSA P-384 verify",
        _rate(lambda: verify_ecdsa_p384_sha384(key, parsed.r, parsed.s, parsed.signed_bytes)),
    )


def _emulated() -> list[Row]:
    """Emulated SGX/TDX quotes and an SNP report (test roots), verified by the same code."""
    from securetf.attestation.emulated.amd import AmdTestPki
    from securetf.attestation.emulated.intel import IntelTestPki

    now = int(time.time())
    intel, amd = IntelTestPki.generate(now=now), AmdTestPki.generate(now=now)
    rows = []
    for tee in ("sgx", "tdx"):
        quote = intel.quote(tee, bytes(64))
        collateral = Collateral.load(intel.collateral_json(tee).encode())

        def full(quote: bytes = quote, collateral: Collateral = collateral, tee: str = tee) -> None:
            verify_dcap(quote, collateral, tee=tee, now=now, root=intel.root)

        def bare(quote: bytes = quote, collateral: Collateral = collateral) -> None:
            _dcap_binding.verify(quote, collateral.native, intel.root_der, now)

        rows.append(
            Row(
                "attestation",
                f"verify emulated {tee} quote",
                _rate(full),
                UNIT,
                "dcap-qvl verify alone",
                _rate(bare),
            )
        )
    report, vcek = amd.report(bytes(64)), amd.vcek_der()
    parsed = SnpReport.parse(report)
    key = Certificate.load(vcek).public_key_der()
    rows.append(
        Row(
            "attestation",
            "verify emulated sev-snp report",
            _rate(lambda: verify_snp(report, vcek, now=now, roots=amd.roots())),
            UNIT,
            "bare ECDSA P-384 verify",
            _rate(lambda: verify_ecdsa_p384_sha384(key, parsed.r, parsed.s, parsed.signed_bytes)),
        )
    )
    return rows


def run() -> list[Row]:
    with _one_core(), _quiet_sim():
        emulated = _emulated()
        if not VECTORS.is_dir():  # a user's clone: no ../shared beside it
            print(f"bench attestation: {VECTORS} is missing, so only sim and emulated evidence")
            return [_sim(), *emulated]
        return [_sim(), *(_dcap(*case) for case in DCAP), _snp(), *emulated]

"""Where the CAS's collateral comes from: with a source of its own configured, the CAS
never lets a runtime choose the collateral its evidence is judged by (older collateral,
still in date, could call a platform up to date that a TCB recovery has since demoted)."""

from __future__ import annotations

import pytest

from securetf.attestation import Collateral
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.collateral import CollateralSource
from securetf.attestation.emulated.intel import IntelTestPki
from securetf.cas._evidence import EvidenceVerifier
from securetf.errors import AttestationError

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def pki() -> IntelTestPki:
    return IntelTestPki.generate(now=NOW)


def _verifier(pki: IntelTestPki, fetched: list[bytes], **source: object) -> EvidenceVerifier:
    def fetch(quote: bytes, url: str) -> Collateral:
        fetched.append(quote)
        return Collateral.load(pki.collateral_json("tdx").encode())

    return EvidenceVerifier(
        test_roots=EmulatedRoots(intel=pki.root),
        collateral=CollateralSource(fetch_dcap=fetch, test_roots=[pki.root], **source),  # type: ignore[arg-type]
    )


def test_with_a_pccs_the_cas_uses_its_own_collateral(pki: IntelTestPki) -> None:
    quote = pki.quote("tdx", bytes(64))
    other = IntelTestPki.generate(now=NOW).collateral_json("tdx")  # signed, but not for us
    fetched: list[bytes] = []
    verifier = _verifier(pki, fetched, pccs_url="http://pccs.invalid")
    claims = verifier.verify("tdx", quote, now=NOW, collateral_json=other)
    assert claims.tcb_status == "UpToDate"
    assert fetched == [quote]


def test_without_a_source_the_request_must_bring_it(pki: IntelTestPki) -> None:
    quote = pki.quote("tdx", bytes(64))
    fetched: list[bytes] = []
    verifier = _verifier(pki, fetched)
    claims = verifier.verify("tdx", quote, now=NOW, collateral_json=pki.collateral_json("tdx"))
    assert claims.test_roots
    assert fetched == []
    with pytest.raises(AttestationError):
        verifier.verify("tdx", quote, now=NOW, collateral_json=None)

"""The dispatcher and evidence decoding: binary or hex, and clear errors for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.attestation import decode_evidence, verify_evidence
from securetf.attestation.verify import MAX_EVIDENCE_SIZE
from securetf.errors import AttestationError, Error, UsageError
from tests.attestation.vectors import DCAP, SNP_AT, SNP_REPORT_FILE, snp_report, snp_vcek, vector


def test_hex_text_and_binary_decode_to_the_same_bytes() -> None:
    binary = snp_report()
    assert decode_evidence(vector(SNP_REPORT_FILE).read_bytes()) == binary
    assert decode_evidence(binary.hex().encode() + b"\n") == binary
    assert decode_evidence(DCAP[0].quote) == DCAP[0].quote


@pytest.mark.parametrize("data", [b"", b"  \n", b"x" * (MAX_EVIDENCE_SIZE + 1)])
def test_empty_or_oversized_evidence_is_a_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError):
        decode_evidence(data)


def test_each_tee_needs_its_inputs() -> None:
    with pytest.raises(UsageError, match="--vcek"):
        verify_evidence("sev-snp", snp_report(), now=SNP_AT)
    with pytest.raises(UsageError, match="--collateral"):
        verify_evidence("tdx", DCAP[1].quote, now=DCAP[1].at)
    with pytest.raises(AttestationError, match="no sim platform key"):
        verify_evidence("sim", b"x", now=0)
    with pytest.raises(UsageError, match="unknown TEE"):
        verify_evidence("sgx2", b"x", now=0)


def test_snp_report_given_as_dcap_quote_and_back_fails() -> None:
    v = DCAP[0]
    with pytest.raises(AttestationError):
        verify_evidence("sgx", snp_report(), now=v.at, collateral=v.collateral)
    with pytest.raises(AttestationError):
        verify_evidence("sev-snp", v.quote, now=SNP_AT, vcek=snp_vcek())


@given(data=st.binary(max_size=2048), tee=st.sampled_from(["sgx", "tdx", "sev-snp", "sim"]))
def test_random_input_never_crashes(data: bytes, tee: str) -> None:
    v = DCAP[0]
    with pytest.raises(Error):
        verify_evidence(
            tee, data, now=v.at, collateral=v.collateral, vcek=snp_vcek(), sim_trust=frozenset()
        )

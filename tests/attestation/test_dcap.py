"""SGX and TDX DCAP quotes: the real ones, at their time and at the wall clock, tampered."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.attestation import Collateral, verify_dcap
from securetf.errors import AttestationError, UsageError
from tests.attestation.vectors import DCAP, DcapVector, vector

IDS = [v.name for v in DCAP]


def _verify(v: DcapVector, quote: bytes, now: int | None = None) -> object:
    return verify_dcap(quote, v.collateral, tee=v.tee, now=v.at if now is None else now)


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_real_quote_verifies_at_its_documented_time(v: DcapVector) -> None:
    claims = verify_dcap(v.quote, v.collateral, tee=v.tee, now=v.at)
    assert claims.tee == v.tee
    assert claims.tcb_status == v.status
    assert claims.advisories == v.advisories
    assert claims.measurement.hex() == v.measurement
    assert claims.debug is False
    assert len(claims.report_data) == 64


def test_sgx_claims_carry_signer_and_isv_numbers() -> None:
    v = DCAP[0]
    claims = verify_dcap(v.quote, v.collateral, tee="sgx", now=v.at)
    assert claims.measurements["mrsigner"].hex().startswith("815f42f1")
    assert dict(claims.tcb) == {"isv_prod_id": 0, "isv_svn": 0}
    assert claims.report_data.startswith(b"Hello, world!")


def test_tdx_claims_carry_rtmrs() -> None:
    v = DCAP[1]
    claims = verify_dcap(v.quote, v.collateral, tee="tdx", now=v.at)
    assert {"rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_seam", "td_attributes"} <= set(
        claims.measurements
    )


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_real_quote_fails_at_the_wall_clock(v: DcapVector) -> None:
    with pytest.raises(AttestationError, match="not valid at the given time"):
        _verify(v, v.quote, now=int(time.time()))


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_real_quote_fails_before_its_collateral_was_issued(v: DcapVector) -> None:
    with pytest.raises(AttestationError, match="in the future"):
        _verify(v, v.quote, now=v.at - 365 * 86400)


@pytest.mark.parametrize("v", DCAP, ids=IDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_fails(v: DcapVector, data: st.DataObject) -> None:
    quote = v.quote
    bit = data.draw(st.integers(min_value=0, max_value=len(quote) * 8 - 1), label="bit")
    tampered = bytearray(quote)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AttestationError):
        _verify(v, bytes(tampered))


@pytest.mark.slow
@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_a_flipped_bit_in_every_byte_fails(v: DcapVector) -> None:
    quote = v.quote
    for i in range(len(quote)):
        tampered = bytearray(quote)
        tampered[i] ^= 1 << (i % 8)
        with pytest.raises(AttestationError):
            _verify(v, bytes(tampered))


@pytest.mark.parametrize("v", DCAP, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_truncated_quote_fails(v: DcapVector, data: st.DataObject) -> None:
    quote = v.quote
    # Cutting into the zero padding of tdx-v4 leaves a valid quote, so cut before it.
    end = len(quote.rstrip(b"\0"))
    cut = data.draw(st.integers(min_value=0, max_value=end), label="cut")
    with pytest.raises(AttestationError):
        _verify(v, quote[:cut])


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_trailing_bytes_fail_unless_zero_padding(v: DcapVector) -> None:
    quote = v.quote
    with pytest.raises(AttestationError):
        _verify(v, quote + b"\x01")
    # Zero padding after the signature data is what real kernels hand out (tdx-v4 has 70).
    _verify(v, quote + bytes(16))
    with pytest.raises(AttestationError, match="more than"):
        _verify(v, quote + bytes(64 * 1024))


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 10, b"\x03\x00\x02\x00" + b"\xff" * 2000])
def test_garbage_fails_cleanly(garbage: bytes) -> None:
    with pytest.raises(AttestationError):
        _verify(DCAP[0], garbage)


def test_quote_of_another_tee_is_refused() -> None:
    sgx, tdx = DCAP[0], DCAP[1]
    with pytest.raises(AttestationError, match="this is a sgx quote, not tdx"):
        verify_dcap(sgx.quote, sgx.collateral, tee="tdx", now=sgx.at)
    with pytest.raises(AttestationError, match="this is a tdx quote, not sgx"):
        verify_dcap(tdx.quote, tdx.collateral, tee="sgx", now=tdx.at)
    with pytest.raises(UsageError):
        verify_dcap(sgx.quote, sgx.collateral, tee="sev-snp", now=sgx.at)


def test_collateral_of_another_platform_fails() -> None:
    tdx4, tdx5 = DCAP[1], DCAP[2]
    with pytest.raises(AttestationError):
        verify_dcap(tdx4.quote, tdx5.collateral, tee="tdx", now=tdx5.at)


def test_collateral_with_another_pck_chain_fails() -> None:
    # v5 collateral carries its own PCK chain; pairing it with the v4 quote's chain differs.
    v4, v5 = DCAP[1], DCAP[2]
    fields = json.loads(vector(v4.collateral_file).read_text())
    fields["pck_certificate_chain"] = json.loads(vector(v5.collateral_file).read_text())[
        "pck_certificate_chain"
    ]
    mixed = Collateral.load(json.dumps(fields).encode())
    with pytest.raises(AttestationError, match="PCK certificate chain is not the quote's"):
        verify_dcap(v4.quote, mixed, tee="tdx", now=v4.at)


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b"[1, 2]", b'{"tcb_info": 5}', b"\xff\xfe", b'{"pck_certificate_chain": 1}'],
)
def test_malformed_collateral_is_a_usage_error(text: bytes) -> None:
    with pytest.raises(UsageError):
        Collateral.load(text)

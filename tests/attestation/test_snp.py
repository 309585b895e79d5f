"""SEV-SNP: the real Milan report, tampering, wrong VCEKs, and a test PKI for chip checks."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.attestation import verify_snp
from securetf.attestation.snp_report import REPORT_SIZE
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError
from tests.attestation.snp_pki import INSIDE, FakeAmdPki, cert_builder, make_report, tcb_bytes
from tests.attestation.vectors import SNP_AT, SNP_MEASUREMENT, snp_report, snp_vcek

SPL = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
CHIP_A = bytes(range(64))
CHIP_B = bytes(range(64, 128))


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki.make("Milan")


def test_real_report_verifies_with_its_vcek() -> None:
    claims = verify_snp(snp_report(), snp_vcek(), now=SNP_AT)
    assert claims.tee == "sev-snp"
    assert claims.measurement.hex() == SNP_MEASUREMENT
    assert claims.tcb_status == "UpToDate"
    assert claims.debug is False
    assert claims.tcb["reported_snp"] == 8
    assert claims.tcb["reported_microcode"] == 115
    assert claims.signer.startswith("amd-vcek:Milan:d49554ec")
    assert claims.measurements["chip_id"].hex().startswith("d49554ec")


def test_real_report_verifies_at_the_wall_clock_while_the_vcek_is_valid() -> None:
    # SNP has no expiring collateral: only the certificates' validity bounds it.
    now = int(time.time())
    vcek = Certificate.load(snp_vcek())
    if not vcek.valid_at(now):  # after 2030-04-03 the next test covers it
        pytest.skip("the wall clock is past the VCEK's validity")
    assert verify_snp(snp_report(), snp_vcek(), now=now).measurement.hex() == SNP_MEASUREMENT


@pytest.mark.parametrize("offset", [1, -1])
def test_real_report_fails_outside_the_vcek_validity(offset: int) -> None:
    vcek = Certificate.load(snp_vcek())
    now = vcek.not_after + 1 if offset > 0 else vcek.not_before - 1
    with pytest.raises(AttestationError, match="not valid at"):
        verify_snp(snp_report(), snp_vcek(), now=now)


@settings(max_examples=300, deadline=None)
@given(bit=st.integers(min_value=0, max_value=REPORT_SIZE * 8 - 1))
def test_any_flipped_bit_fails(bit: int) -> None:
    tampered = bytearray(snp_report())
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AttestationError):
        verify_snp(bytes(tampered), snp_vcek(), now=SNP_AT)


@pytest.mark.slow
def test_a_flipped_bit_in_every_byte_fails() -> None:
    for i in range(len(snp_report())):
        tampered = bytearray(snp_report())
        tampered[i] ^= 1 << (i % 8)
        with pytest.raises(AttestationError):
            verify_snp(bytes(tampered), snp_vcek(), now=SNP_AT)


def test_changed_chip_id_is_caught_by_the_vcek_hwid() -> None:
    # Proves the hwID comparison: the chip id check fires before the signature check.
    tampered = bytearray(snp_report())
    tampered[0x1A0] ^= 0xFF
    with pytest.raises(AttestationError, match="chip id is not the chip"):
        verify_snp(bytes(tampered), snp_vcek(), now=SNP_AT)


def test_self_made_vcek_not_signed_by_the_ask_fails() -> None:
    # A P-384 certificate that names AMD's real SEV-Milan ASK as issuer but is signed by
    # another key: the chain check must refuse it.
    fake_ask = FakeAmdPki.make("Milan")
    key = ec.generate_private_key(ec.SECP384R1())
    cert = fake_ask.vcek(key, hwid=snp_report()[0x1A0:0x1E0], spl=SPL)
    with pytest.raises(AttestationError, match="not signed by the AMD ASK of Milan"):
        verify_snp(snp_report(), cert, now=SNP_AT)


def test_certificate_of_an_unknown_issuer_fails() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    other = FakeAmdPki.make("Nowhere")
    with pytest.raises(AttestationError, match="not by the ASK of a known product"):
        verify_snp(snp_report(), other.vcek(key, hwid=CHIP_A, spl=SPL), now=SNP_AT)


def test_report_of_chip_a_against_the_vcek_of_chip_b_fails(pki: FakeAmdPki) -> None:
    key_a, key_b = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    report = make_report(key_a, chip_id=CHIP_A, tcb=tcb_bytes("Milan", SPL))
    vcek_a = pki.vcek(key_a, hwid=CHIP_A, spl=SPL)
    vcek_b = pki.vcek(key_b, hwid=CHIP_B, spl=SPL)
    roots = pki.roots()
    assert verify_snp(report, vcek_a, now=INSIDE, roots=roots).measurement == b"\x22" * 48
    # Chip B's VCEK, with its own hwID: refused by the chip id check.
    with pytest.raises(AttestationError, match="chip id is not the chip"):
        verify_snp(report, vcek_b, now=INSIDE, roots=roots)
    # A VCEK claiming chip A's hwID but holding chip B's key: refused by the signature.
    impostor = pki.vcek(key_b, hwid=CHIP_A, spl=SPL)
    with pytest.raises(AttestationError, match="signature does not verify"):
        verify_snp(report, impostor, now=INSIDE, roots=roots)


def test_vcek_for_another_tcb_fails(pki: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = make_report(key, chip_id=CHIP_A, tcb=tcb_bytes("Milan", {**SPL, "snp": 9}))
    vcek = pki.vcek(key, hwid=CHIP_A, spl=SPL)
    with pytest.raises(AttestationError, match="snp=9 is not the TCB"):
        verify_snp(report, vcek, now=INSIDE, roots=pki.roots())


def test_masked_chip_id_skips_only_the_hwid_check(pki: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = make_report(key, chip_id=bytes(64), tcb=tcb_bytes("Milan", SPL), flags=0b10)
    vcek = pki.vcek(key, hwid=CHIP_A, spl=SPL)
    assert verify_snp(report, vcek, now=INSIDE, roots=pki.roots()).tee == "sev-snp"


def test_turin_layout_and_cpuid(pki: FakeAmdPki) -> None:
    turin = FakeAmdPki.make("Turin")
    spl = {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 5}
    key = ec.generate_private_key(ec.SECP384R1())
    report = make_report(
        key, chip_id=CHIP_A, tcb=tcb_bytes("Turin", spl), version=3, cpuid=(0x1A, 0x02, 1)
    )
    vcek = turin.vcek(key, hwid=CHIP_A[:8], spl=spl)
    claims = verify_snp(report, vcek, now=INSIDE, roots=turin.roots())
    assert {k: claims.tcb[f"reported_{k}"] for k in spl} == spl
    # The same report claiming a Milan CPU: the product does not match the VCEK.
    milan_cpu = make_report(
        key, chip_id=CHIP_A, tcb=tcb_bytes("Turin", spl), version=3, cpuid=(0x19, 0x01, 1)
    )
    with pytest.raises(AttestationError, match="Milan CPU but the VCEK is Turin"):
        verify_snp(milan_cpu, vcek, now=INSIDE, roots=turin.roots())


def test_debug_policy_and_min_tcb(pki: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = make_report(key, chip_id=CHIP_A, tcb=tcb_bytes("Milan", SPL), policy=0x30000 | 1 << 19)
    vcek = pki.vcek(key, hwid=CHIP_A, spl=SPL)
    roots = pki.roots()
    assert verify_snp(report, vcek, now=INSIDE, roots=roots).debug is True
    low = verify_snp(report, vcek, now=INSIDE, roots=roots, min_tcb={"snp": 8})
    assert low.tcb_status == "UpToDate"
    high = verify_snp(report, vcek, now=INSIDE, roots=roots, min_tcb={"snp": 9})
    assert high.tcb_status == "OutOfDate"
    with pytest.raises(UsageError, match="unknown SNP TCB part"):
        verify_snp(report, vcek, now=INSIDE, roots=roots, min_tcb={"nonsense": 1})


def test_vlek_signed_reports_are_refused(pki: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = make_report(key, chip_id=CHIP_A, tcb=tcb_bytes("Milan", SPL), flags=1 << 2)
    with pytest.raises(AttestationError, match="VCEK-signed reports only"):
        verify_snp(report, pki.vcek(key, hwid=CHIP_A, spl=SPL), now=INSIDE, roots=pki.roots())


def test_real_report_against_test_roots_fails(pki: FakeAmdPki) -> None:
    with pytest.raises(AttestationError, match="not signed by"):
        verify_snp(snp_report(), snp_vcek(), now=SNP_AT, roots=pki.roots())


def test_rsa_pkcs1_signed_vcek_is_refused(pki: FakeAmdPki) -> None:
    # Only RSA-PSS SHA-384 is AMD's scheme; a PKCS#1 v1.5 signature by the right key fails.
    key = ec.generate_private_key(ec.SECP384R1())
    cert = cert_builder("SEV-VCEK", "SEV-Milan", key.public_key()).sign(
        pki.ask_key, hashes.SHA384()
    )
    vcek = cert.public_bytes(serialization.Encoding.DER)
    report = make_report(key, chip_id=CHIP_A, tcb=tcb_bytes("Milan", SPL))
    with pytest.raises(AttestationError, match="not RSA-PSS"):
        verify_snp(report, vcek, now=INSIDE, roots=pki.roots())


@pytest.mark.parametrize("vcek", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"])
def test_malformed_vcek_is_a_usage_error(vcek: bytes) -> None:
    with pytest.raises(UsageError, match="VCEK is not a DER or PEM"):
        verify_snp(snp_report(), vcek, now=SNP_AT)

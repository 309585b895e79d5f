"""Emulated SEV-SNP hardware: its evidence passes the production verifier with its roots
only, its KDS answers as AMD's does, and its certificate table parses."""

from __future__ import annotations

import stat
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.attestation import SnpReport, verify_snp
from securetf.attestation.emulated._amd_report import build_cert_table
from securetf.attestation.emulated.amd import EMULATED_MEASUREMENT, AmdTestPki
from securetf.attestation.emulated.kds import serve_kds
from securetf.attestation.kds import fetch_crl, fetch_vcek, vcek_url
from securetf.attestation.snp_certs import (
    ARK_GUID,
    ASK_GUID,
    ENTRY_SIZE,
    MAX_TABLE_SIZE,
    VCEK_GUID,
    VLEK_GUID,
    cert_table_entries,
    vcek_from_cert_table,
)
from securetf.attestation.snp_report import REPORT_SIZE
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError

NOW = 1_760_000_000
DAY = 86400
DAYS = 30
REPORT_DATA = bytes(range(64))


@pytest.fixture(scope="module")
def pki() -> AmdTestPki:
    return AmdTestPki.generate(now=NOW, days=DAYS)


@pytest.fixture(scope="module")
def other(pki: AmdTestPki) -> AmdTestPki:
    """Another test PKI for the same chip id: only its ARK, ASK and keys differ."""
    return AmdTestPki.generate(now=NOW, days=DAYS, chip_id=pki.chip_id)


@pytest.fixture(scope="module")
def turin() -> AmdTestPki:
    return AmdTestPki.generate(now=NOW, product="Turin", tcb={"fmc": 2})


@pytest.fixture(scope="module")
def report(pki: AmdTestPki) -> bytes:
    return pki.report(REPORT_DATA)


# The verifier accepts the emulated evidence, with the test roots only.


def test_a_report_verifies_and_carries_its_fields(pki: AmdTestPki) -> None:
    measurement, host_data = b"\x5a" * 48, b"\xa5" * 32
    raw = pki.report(REPORT_DATA, measurement=measurement, host_data=host_data, vmpl=1)
    assert len(raw) == REPORT_SIZE
    claims = verify_snp(raw, pki.vcek_der(), now=NOW, roots=pki.roots())
    assert claims.tee == "sev-snp"
    assert claims.measurement == measurement
    assert claims.report_data == REPORT_DATA
    assert claims.measurements["host_data"] == host_data
    assert claims.measurements["chip_id"] == pki.chip_id
    assert claims.tcb["vmpl"] == 1
    assert claims.tcb["version"] == 3
    assert {k: claims.tcb[f"reported_{k}"] for k in pki.tcb} == dict(pki.tcb)
    assert claims.debug is False
    assert claims.tcb_status == "UpToDate"
    assert claims.signer == f"amd-vcek:Milan:{pki.chip_id.hex()}"


def test_the_defaults_are_a_milan_v3_report_without_debug(report: bytes) -> None:
    parsed = SnpReport.parse(report)
    assert parsed.measurement == EMULATED_MEASUREMENT
    assert parsed.cpuid == (0x19, 0x01, 0x01)
    assert parsed.policy == 0x30000
    assert parsed.signing_key == 0


def test_a_debug_policy_gives_debug_claims(pki: AmdTestPki) -> None:
    raw = pki.report(REPORT_DATA, debug=True)
    assert verify_snp(raw, pki.vcek_der(), now=NOW, roots=pki.roots()).debug is True


def test_a_tcb_below_min_tcb_is_out_of_date(pki: AmdTestPki, report: bytes) -> None:
    roots, vcek, snp = pki.roots(), pki.vcek_der(), pki.tcb["snp"]
    low = verify_snp(report, vcek, now=NOW, roots=roots, min_tcb={"snp": snp})
    assert low.tcb_status == "UpToDate"
    high = verify_snp(report, vcek, now=NOW, roots=roots, min_tcb={"snp": snp + 1})
    assert high.tcb_status == "OutOfDate"


def test_another_reported_tcb_needs_the_vcek_of_that_tcb(pki: AmdTestPki) -> None:
    newer = {"snp": pki.tcb["snp"] + 1}
    raw = pki.report(REPORT_DATA, reported_tcb=newer)
    with pytest.raises(AttestationError, match="is not the TCB this VCEK was issued for"):
        verify_snp(raw, pki.vcek_der(), now=NOW, roots=pki.roots())
    claims = verify_snp(raw, pki.vcek_der(newer), now=NOW, roots=pki.roots())
    assert claims.tcb["reported_snp"] == newer["snp"]
    # As on the PSP, each TCB has its own key, and the same TCB the same certificate.
    keys = {Certificate.load(pki.vcek_der(t)).public_key_der() for t in (None, newer)}
    assert len(keys) == 2
    assert pki.vcek_der(newer) == pki.vcek_der(newer)


def test_a_patch_level_above_127_is_a_positive_der_integer(pki: AmdTestPki) -> None:
    high = {"microcode": 200}
    raw = pki.report(REPORT_DATA, reported_tcb=high)
    claims = verify_snp(raw, pki.vcek_der(high), now=NOW, roots=pki.roots())
    assert claims.tcb["reported_microcode"] == 200


def test_a_masked_chip_id_verifies(pki: AmdTestPki) -> None:
    raw = pki.report(REPORT_DATA, mask_chip_id=True)
    claims = verify_snp(raw, pki.vcek_der(), now=NOW, roots=pki.roots())
    assert claims.measurements["chip_id"] == bytes(64)


def test_the_production_roots_refuse_it(pki: AmdTestPki, report: bytes) -> None:
    with pytest.raises(AttestationError, match="not signed by the AMD ASK of Milan"):
        verify_snp(report, pki.vcek_der(), now=NOW)


def test_a_vcek_of_another_test_pki_is_refused(pki: AmdTestPki, other: AmdTestPki) -> None:
    # Same product and chip id, but an ARK the roots do not know.
    with pytest.raises(AttestationError, match="not signed by the AMD ASK of Milan"):
        verify_snp(other.report(REPORT_DATA), other.vcek_der(), now=NOW, roots=pki.roots())
    with pytest.raises(AttestationError):
        verify_snp(pki.report(REPORT_DATA), other.vcek_der(), now=NOW, roots=pki.roots())


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0, max_value=REPORT_SIZE * 8 - 1))
def test_a_flipped_bit_is_refused(pki: AmdTestPki, report: bytes, bit: int) -> None:
    tampered = bytearray(report)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AttestationError):
        verify_snp(bytes(tampered), pki.vcek_der(), now=NOW, roots=pki.roots())


@pytest.mark.parametrize(
    ("when", "message"),
    [
        # The roots outlive the VCEK, as AMD's do: the VCEK is what expires.
        (NOW + (DAYS + 2) * DAY, r"^VCEK .* is not valid at"),
        # Everything starts a day before ``now``.
        (NOW - 2 * DAY, "ARK-Milan .* is not valid at"),
    ],
)
def test_outside_the_validity_it_fails(
    pki: AmdTestPki, report: bytes, when: int, message: str
) -> None:
    verify_snp(report, pki.vcek_der(), now=NOW + DAYS * DAY, roots=pki.roots())
    with pytest.raises(AttestationError, match=message):
        verify_snp(report, pki.vcek_der(), now=when, roots=pki.roots())


def test_turin_has_an_8_byte_hwid_and_an_fmc(turin: AmdTestPki) -> None:
    assert len(turin.hwid) == 8
    assert turin.chip_id[8:] == bytes(56)
    claims = verify_snp(turin.report(REPORT_DATA), turin.vcek_der(), now=NOW, roots=turin.roots())
    assert claims.tcb["reported_fmc"] == 2
    assert claims.signer.startswith("amd-vcek:Turin:")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"product": "Naples"}, "unknown SEV-SNP product"),
        ({"days": 0}, "at least one day"),
        ({"chip_id": b"\x01" * 63}, "a chip id is 64 bytes"),
        ({"chip_id": bytes(64)}, "not all zero"),
        ({"tcb": {"fmc": 1}}, "Milan's TCB has no part fmc"),
        ({"tcb": {"snp": 256}}, "not a byte"),
    ],
)
def test_generate_refuses_impossible_hardware(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        AmdTestPki.generate(now=NOW, **kwargs)  # type: ignore[arg-type]


def test_report_refuses_impossible_fields(pki: AmdTestPki) -> None:
    with pytest.raises(UsageError, match="report data is 64 bytes"):
        pki.report(b"short")
    with pytest.raises(UsageError, match="measurement is 48 bytes"):
        pki.report(REPORT_DATA, measurement=b"x")
    with pytest.raises(UsageError, match="VMPL"):
        pki.report(REPORT_DATA, vmpl=4)
    with pytest.raises(UsageError, match="version 6"):
        pki.report(REPORT_DATA, version=6)


# The PKI on disk, shared between processes.


def test_save_and_load_give_the_same_chip_and_roots(
    pki: AmdTestPki, report: bytes, tmp_path: Path
) -> None:
    directory = tmp_path / "pki"
    pki.save(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("ark-key.pem", "ask-key.pem", "chip-secret.hex"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    loaded = AmdTestPki.load(directory)
    assert (loaded.product, loaded.chip_id, dict(loaded.tcb)) == (
        pki.product,
        pki.chip_id,
        dict(pki.tcb),
    )
    assert loaded.vcek_der() == pki.vcek_der()
    assert loaded.cert_chain_pem() == pki.cert_chain_pem()
    assert loaded.crl_der() == pki.crl_der()
    # Each side's evidence verifies with the other's VCEK and roots (one chip secret).
    verify_snp(loaded.report(REPORT_DATA), pki.vcek_der(), now=NOW, roots=pki.roots())
    newer = {"snp": pki.tcb["snp"] + 1}
    raw = pki.report(REPORT_DATA, reported_tcb=newer)
    verify_snp(raw, loaded.vcek_der(newer), now=NOW, roots=loaded.roots())


def test_load_refuses_a_directory_mixed_from_two_pkis(pki: AmdTestPki, tmp_path: Path) -> None:
    pki.save(tmp_path)
    secret = (tmp_path / "chip-secret.hex").read_bytes()
    (tmp_path / "chip-secret.hex").write_text("ab" * 48)
    with pytest.raises(UsageError, match="not the VCEK of this chip secret"):
        AmdTestPki.load(tmp_path)
    (tmp_path / "chip-secret.hex").write_bytes(secret)
    (tmp_path / "ark.pem").write_bytes((tmp_path / "ask.pem").read_bytes())
    with pytest.raises(UsageError, match=r"ark\.pem does not hold the public key"):
        AmdTestPki.load(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        AmdTestPki.load(tmp_path / "missing")


# The local KDS and the KDS client.


def _http_get(url: str) -> bytes:
    """A plain GET, as any KDS client makes it (http only: the local KDS)."""
    assert url.startswith("http://")
    with urllib.request.urlopen(url) as response:  # noqa: S310
        body: bytes = response.read()
    return body


def test_fetch_vcek_from_the_local_kds_verifies_the_report(pki: AmdTestPki) -> None:
    newer = {"microcode": pki.tcb["microcode"] + 1}
    raw = pki.report(REPORT_DATA, reported_tcb=newer)
    with serve_kds(pki) as kds:
        vcek = fetch_vcek(kds.url, raw)
        crl = fetch_crl(kds.url, "Milan")
    claims = verify_snp(raw, vcek, now=NOW, roots=pki.roots())
    assert claims.tcb["reported_microcode"] == newer["microcode"]
    assert crl == pki.crl_der()


def test_the_kds_serves_chain_and_crl_as_amd_does(pki: AmdTestPki) -> None:
    with serve_kds(pki) as kds:
        chain = _http_get(f"{kds.url}/vcek/v1/Milan/cert_chain")
        crl = x509.load_der_x509_crl(_http_get(f"{kds.url}/vcek/v1/Milan/crl"))
    ask, ark = Certificate.load_pem_chain(chain)
    assert (ask.subject_cn, ark.issuer_cn) == ("SEV-Milan", ark.subject_cn)
    assert (ark, ask) == (pki.roots()["Milan"].ark, pki.roots()["Milan"].ask)
    ark_cert = x509.load_pem_x509_certificate(ark.pem())
    assert crl.issuer == ark_cert.subject
    assert crl.is_signature_valid(ark_cert.public_key())  # type: ignore[arg-type]
    assert crl.signature_algorithm_parameters is not None  # RSA-PSS, as AMD signs
    assert crl.next_update_utc is not None
    assert int(crl.next_update_utc.timestamp()) == NOW + DAYS * DAY


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("blSPL=3&teeSPL=0&snpSPL=8", 400),  # ucodeSPL missing
        ("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115&fmcSPL=1", 400),  # not a Turin
        ("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=256", 400),
        ("blSPL=3&blSPL=4&teeSPL=0&snpSPL=8&ucodeSPL=115", 400),
    ],
)
def test_the_kds_refuses_a_bad_query(pki: AmdTestPki, query: str, status: int) -> None:
    with serve_kds(pki) as kds:
        url = f"{kds.url}/vcek/v1/Milan/{pki.hwid.hex()}?{query}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            _http_get(url)
    assert refused.value.code == status


def test_the_kds_knows_only_its_chip(pki: AmdTestPki, turin: AmdTestPki) -> None:
    stranger = bytes(reversed(pki.chip_id))
    with serve_kds(pki) as kds:
        with pytest.raises(AttestationError, match=r"HTTP 404 for http://127\.0\.0\.1:\d+/vcek"):
            fetch_vcek(kds.url, turin.report(REPORT_DATA))
        with pytest.raises(AttestationError, match="HTTP 404"):
            fetch_crl(kds.url, "Genoa")
        url = vcek_url(kds.url, "Milan", stranger, pki.tcb)
        with pytest.raises(urllib.error.HTTPError) as refused:
            _http_get(url)
        assert refused.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as refused:
            _http_get(f"{kds.url}/vlek/v1/Milan/cert_chain")
        assert refused.value.code == 404


def test_a_turin_vcek_url_has_the_hwid_and_fmc() -> None:
    chip_id = bytes(range(1, 9)).ljust(64, b"\0")
    tcb = {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 5}
    assert vcek_url("https://kds.example/", "Turin", chip_id, tcb) == (
        "https://kds.example/vcek/v1/Turin/0102030405060708"
        "?fmcSPL=01&blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=05"
    )
    milan = vcek_url("http://kds", "Milan", b"\xab" * 64, {**tcb, "microcode": 115})
    query = "blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=115"
    assert milan == f"http://kds/vcek/v1/Milan/{'ab' * 64}?{query}"


def test_fetch_vcek_of_a_turin_chip_from_the_local_kds(turin: AmdTestPki) -> None:
    raw = turin.report(REPORT_DATA)
    with serve_kds(turin) as kds:
        vcek = fetch_vcek(kds.url, raw)
    assert verify_snp(raw, vcek, now=NOW, roots=turin.roots()).tee == "sev-snp"


def test_fetch_vcek_needs_a_product_and_a_chip_id(pki: AmdTestPki) -> None:
    with serve_kds(pki) as kds:
        v2 = pki.report(REPORT_DATA, version=2)
        with pytest.raises(UsageError, match="pass product="):
            fetch_vcek(kds.url, v2)
        assert fetch_vcek(kds.url, v2, product="Milan") == pki.vcek_der()
        with pytest.raises(AttestationError, match="comes from a Milan CPU, not Genoa"):
            fetch_vcek(kds.url, pki.report(REPORT_DATA), product="Genoa")
        with pytest.raises(AttestationError, match="chip id is masked"):
            fetch_vcek(kds.url, pki.report(REPORT_DATA, mask_chip_id=True))


def test_an_unreachable_kds_is_named(pki: AmdTestPki, report: bytes) -> None:
    kds = serve_kds(pki)
    kds.close()
    kds.close()
    with pytest.raises(AttestationError, match=f"cannot fetch {kds.url}/vcek/v1/Milan/"):
        fetch_vcek(kds.url, report, timeout=2)
    with pytest.raises(UsageError, match="a KDS URL is http"):
        fetch_vcek("file:///etc", report)


# The certificate table.


def test_the_cert_table_holds_vcek_ask_and_ark(pki: AmdTestPki) -> None:
    table = pki.cert_table()
    assert vcek_from_cert_table(table) == pki.vcek_der()
    entries = cert_table_entries(table)
    roots = pki.roots()["Milan"]
    assert entries == {VCEK_GUID: pki.vcek_der(), ASK_GUID: roots.ask.der, ARK_GUID: roots.ark.der}
    # The layout: three entries, the zero terminator, then the VCEK; GUIDs in RFC 4122 order.
    assert table[:16] == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    assert struct.unpack_from("<II", table, 16) == (4 * ENTRY_SIZE, len(pki.vcek_der()))
    assert table[3 * ENTRY_SIZE : 4 * ENTRY_SIZE] == bytes(ENTRY_SIZE)
    # Padding after the certificates (the ioctl's buffer) is ignored.
    assert vcek_from_cert_table(table + bytes(4096)) == pki.vcek_der()


def test_no_table_or_no_vcek_gives_none(pki: AmdTestPki) -> None:
    assert vcek_from_cert_table(b"") is None
    assert vcek_from_cert_table(bytes(ENTRY_SIZE)) is None
    assert vcek_from_cert_table(build_cert_table([(VLEK_GUID, b"vlek")])) is None


def _entry(guid: bytes, offset: int, length: int) -> bytes:
    return guid + struct.pack("<II", offset, length)


VCEK = VCEK_GUID.bytes
ASK = ASK_GUID.bytes
END = bytes(ENTRY_SIZE)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_entry(VCEK, 48, 4), "no all-zero terminating entry"),
        (_entry(VCEK, 48, 4) + END[:-1], "no all-zero terminating entry"),
        (_entry(VCEK, 48, 5) + END + b"cert", "runs past the end"),
        (_entry(VCEK, 0xFFFFFFFF, 0xFFFFFFFF) + END + b"cert", "runs past the end"),
        (_entry(VCEK, 40, 4) + END + b"cert", "points into the table"),
        (_entry(VCEK, 48, 0) + END + b"cert", "is empty"),
        (_entry(VCEK, 72, 2) + _entry(VCEK, 74, 2) + END + b"cert", "names .* twice"),
        (_entry(bytes(16), 48, 4) + END + b"cert", "zero GUID but data"),
        (_entry(ASK, 48, 4) * 65 + END, "more than 64 entries"),
        (b"\x01" * (MAX_TABLE_SIZE + 1), "more than 65536"),
    ],
)
def test_a_malformed_table_is_refused(table: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        vcek_from_cert_table(table)

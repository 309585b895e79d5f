"""Emulated SGX/TDX hardware: its quotes pass verify_dcap with the test root, and only so.

One PKI per module (generation signs a dozen certificates); every test verifies at ``NOW``,
inside its validity, unless it is about time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securetf.attestation import Collateral, appraise, fetch_collateral, verify_dcap
from securetf.attestation._dcap_layout import check_quote_layout
from securetf.attestation.claims import TEST_ROOTS, Claims
from securetf.attestation.emulated._intel_quote import make_quote, sgx_body
from securetf.attestation.emulated.intel import (
    DEFAULT_MR_ENCLAVE,
    DEFAULT_MR_TD,
    DEFAULT_RTMRS,
    IntelTestPki,
)
from securetf.attestation.emulated.pccs import PccsServer, respond, serve_pccs
from securetf.attestation.tcb import appraise_platform
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError

NOW = 1_800_000_000
DAYS = 30
TEES = ["sgx", "tdx"]
REPORT_DATA = bytes(range(64))


@pytest.fixture(scope="module")
def pki() -> IntelTestPki:
    return IntelTestPki.generate(now=NOW, days=DAYS)


@pytest.fixture(scope="module")
def other_pki() -> IntelTestPki:
    """A second PKI: same names, other keys (what a forger could make)."""
    return IntelTestPki.generate(now=NOW, days=DAYS)


@pytest.fixture(scope="module")
def pccs(pki: IntelTestPki) -> Iterator[PccsServer]:
    with serve_pccs(pki) as server:
        yield server


def _collateral(pki: IntelTestPki, tee: str) -> Collateral:
    return Collateral.load(pki.collateral_json(tee).encode())


def _verify(pki: IntelTestPki, quote: bytes, tee: str, *, now: int = NOW) -> Claims:
    return verify_dcap(quote, _collateral(pki, tee), tee=tee, now=now, root=pki.root)


# -- what verifies --------------------------------------------------------------------------


def test_sgx_quote_verifies_with_its_claims(pki: IntelTestPki) -> None:
    mr_enclave, mr_signer = bytes([0xAA]) * 32, bytes([0xBB]) * 32
    quote = pki.quote(
        "sgx", REPORT_DATA, mr_enclave=mr_enclave, mr_signer=mr_signer, isv_prod_id=7, isv_svn=3
    )
    claims = verify_dcap(
        quote, _collateral(pki, "sgx"), tee="sgx", now=NOW, root=Certificate.load(pki.root_der)
    )
    assert (claims.tee, claims.tcb_status, claims.advisories) == ("sgx", "UpToDate", ())
    assert claims.measurement == mr_enclave
    assert claims.measurements["mrsigner"] == mr_signer
    assert claims.report_data == REPORT_DATA
    assert dict(claims.tcb) == {"isv_prod_id": 7, "isv_svn": 3}
    assert claims.debug is False
    assert claims.signer.startswith("intel-pck:ppid=")
    assert claims.test_roots is True


def test_tdx_quote_verifies_with_its_claims(pki: IntelTestPki) -> None:
    mr_td, rtmr3 = bytes([0x11]) * 48, bytes([0x33]) * 48
    mr_config_id, mr_owner = bytes([0x44]) * 48, bytes([0x55]) * 48
    quote = pki.quote(
        "tdx", REPORT_DATA, mr_td=mr_td, rtmr3=rtmr3, mr_config_id=mr_config_id, mr_owner=mr_owner
    )
    claims = verify_dcap(
        quote, _collateral(pki, "tdx"), tee="tdx", now=NOW, root=Certificate.load(pki.root_der)
    )
    assert (claims.tee, claims.tcb_status, claims.advisories) == ("tdx", "UpToDate", ())
    assert claims.measurement == mr_td
    assert claims.measurements["rtmr3"] == rtmr3
    assert [claims.measurements[f"rtmr{i}"] for i in range(3)] == list(DEFAULT_RTMRS[:3])
    assert claims.measurements["mr_config_id"] == mr_config_id
    assert claims.measurements["mr_owner"] == mr_owner
    assert claims.report_data == REPORT_DATA
    assert claims.debug is False


def test_defaults_are_deterministic(pki: IntelTestPki) -> None:
    assert _verify(pki, pki.quote("sgx", REPORT_DATA), "sgx").measurement == DEFAULT_MR_ENCLAVE
    tdx = _verify(pki, pki.quote("tdx", REPORT_DATA), "tdx")
    assert tdx.measurement == DEFAULT_MR_TD
    assert tdx.measurements["rtmr3"] == bytes(48)


@pytest.mark.parametrize("tee", TEES)
def test_quote_has_the_real_layout(pki: IntelTestPki, tee: str) -> None:
    layout = check_quote_layout(pki.quote(tee, REPORT_DATA), root=pki.root)
    assert (layout.version, layout.body_size) == ((3, 384) if tee == "sgx" else (4, 584))
    assert [c.subject_cn for c in layout.pck_chain] == [
        "securetf TEST Intel SGX PCK Certificate",
        "securetf TEST Intel SGX PCK Platform CA",
        "securetf TEST Intel SGX Root CA",
    ]


@pytest.mark.parametrize("tee", TEES)
def test_out_of_date_pck_gives_out_of_date(pki: IntelTestPki, tee: str) -> None:
    claims = _verify(pki, pki.quote(tee, REPORT_DATA, pck_tcb="out-of-date"), tee)
    assert claims.tcb_status == "OutOfDate"
    assert claims.advisories == ("INTEL-SA-TEST1",)
    with pytest.raises(AttestationError, match="out-of-date"):
        appraise_platform(claims, tolerate=())
    assert appraise_platform(claims, tolerate=["out-of-date"]) is claims


def test_a_pki_can_default_to_an_out_of_date_platform() -> None:
    pki = IntelTestPki.generate(now=NOW, pck_tcb="out-of-date")
    assert _verify(pki, pki.quote("sgx", REPORT_DATA), "sgx").tcb_status == "OutOfDate"
    assert _verify(pki, pki.quote("sgx", REPORT_DATA, pck_tcb="up-to-date"), "sgx").tcb_status == (
        "UpToDate"
    )


@pytest.mark.parametrize("tee", TEES)
def test_appraisal_accepts_test_roots_only_when_the_policy_names_them(
    pki: IntelTestPki, tee: str
) -> None:
    claims = _verify(pki, pki.quote(tee, REPORT_DATA), tee)

    def appraised(allowed: list[str]) -> Claims:
        return appraise(
            claims,
            allowed_tees=allowed,
            expected_measurements=[claims.measurement],
            expected_report_data=REPORT_DATA,
        )

    with pytest.raises(AttestationError, match="TEST roots"):
        appraised([tee])
    assert appraised([tee, TEST_ROOTS]) is claims


# -- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
def test_debug_enclave_or_td_is_refused(pki: IntelTestPki, tee: str) -> None:
    # dcap-qvl refuses debug quotes itself, after checking every signature.
    bit = "ATTRIBUTES.DEBUG" if tee == "sgx" else "TD_ATTRIBUTES.DEBUG"
    with pytest.raises(AttestationError, match=f"debug-mode TEE.*{bit}"):
        _verify(pki, pki.quote(tee, REPORT_DATA, debug=True), tee)


@pytest.mark.parametrize("tee", TEES)
def test_production_root_refuses_emulated_quotes(pki: IntelTestPki, tee: str) -> None:
    quote = pki.quote(tee, REPORT_DATA)
    with pytest.raises(AttestationError, match="does not end in the Intel SGX Root CA"):
        verify_dcap(quote, _collateral(pki, tee), tee=tee, now=NOW)


@pytest.mark.parametrize("tee", TEES)
def test_quote_of_another_root_is_refused(
    pki: IntelTestPki, other_pki: IntelTestPki, tee: str
) -> None:
    quote = other_pki.quote(tee, REPORT_DATA)
    with pytest.raises(AttestationError, match="does not end in"):
        _verify(pki, quote, tee)
    # Its own collateral does not help: the root is what the verifier trusts.
    with pytest.raises(AttestationError, match="does not end in"):
        verify_dcap(quote, _collateral(other_pki, tee), tee=tee, now=NOW, root=pki.root)


def _sgx_quote_signed_by(pki: IntelTestPki, pck_key_of: IntelTestPki, chain_pem: bytes) -> bytes:
    """An SGX quote whose QE report ``pck_key_of``'s PCK key signs, carrying ``chain_pem``."""
    genuine = pki.platform("sgx")
    forged = dataclasses.replace(
        genuine, pck_key=pck_key_of.platform("sgx").pck_key, pck_chain_pem=chain_pem
    )
    body = sgx_body(
        cpu_svn=genuine.cpu_svn,
        report_data=REPORT_DATA,
        debug=False,
        mr_enclave=DEFAULT_MR_ENCLAVE,
        mr_signer=DEFAULT_MR_ENCLAVE,
        isv_prod_id=1,
        isv_svn=1,
    )
    return make_quote(body, forged)


def test_pck_chain_the_root_did_not_certify_is_refused(
    pki: IntelTestPki, other_pki: IntelTestPki
) -> None:
    # The forger's leaf and Platform CA, spliced onto the trusted root: the layout passes,
    # the chain does not.
    leaf, platform_ca, _ = Certificate.load_pem_chain(other_pki.pck_chain_pem())
    chain = leaf.pem() + platform_ca.pem() + Certificate.load(pki.root_der).pem()
    quote = _sgx_quote_signed_by(pki, other_pki, chain)
    check_quote_layout(quote, root=pki.root)
    with pytest.raises(AttestationError, match="DCAP quote verification failed"):
        _verify(pki, quote, "sgx")


def test_qe_report_signed_by_another_pck_key_is_refused(
    pki: IntelTestPki, other_pki: IntelTestPki
) -> None:
    quote = _sgx_quote_signed_by(pki, other_pki, pki.pck_chain_pem())
    with pytest.raises(AttestationError, match="qe_report"):
        _verify(pki, quote, "sgx")


def _offsets(quote: bytes) -> dict[str, int]:
    """One byte in each part of a quote: header, body, signatures, keys, chain."""
    sgx = quote[0] == 3
    body_end = 48 + (384 if sgx else 584)
    sig = body_end + 4
    qe = sig + 128 + (0 if sgx else 6)  # TDX: after the type-6 certification data header
    return {
        "header": 20,  # QE vendor ID
        "report data": body_end - 1,
        "measurement": 48 + (64 if sgx else 136),  # MRENCLAVE / MRTD
        "quote signature": sig + 10,
        "attestation key": sig + 64 + 10,
        "QE report": qe + 100,
        "QE signature": qe + 384 + 10,
        "QE auth data": qe + 384 + 64 + 2 + 5,
        "PCK chain": len(quote) - 1500,
    }


# Why each tampered part fails: the check that covers it.
_REFUSALS = {
    "header": "Unknown QE vendor ID",
    "report data": "ISV enclave report signature is invalid",
    "measurement": "ISV enclave report signature is invalid",
    "quote signature": "ISV enclave report signature is invalid",
    "attestation key": "QE report hash mismatch",
    "QE report": "Signature is invalid for qe_report",
    "QE signature": "Signature is invalid for qe_report",
    "QE auth data": "QE report hash mismatch",
    "PCK chain": "certificate",
}


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize("part", list(_REFUSALS))
def test_a_flipped_byte_is_refused(pki: IntelTestPki, tee: str, part: str) -> None:
    quote = pki.quote(tee, REPORT_DATA)
    tampered = bytearray(quote)
    tampered[_offsets(quote)[part]] ^= 0x01
    with pytest.raises(AttestationError, match=_REFUSALS[part]):
        _verify(pki, bytes(tampered), tee)


@pytest.mark.parametrize("tee", TEES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_is_refused(pki: IntelTestPki, tee: str, data: st.DataObject) -> None:
    quote = pki.quote(tee, REPORT_DATA)
    bit = data.draw(st.integers(min_value=0, max_value=len(quote) * 8 - 1), label="bit")
    tampered = bytearray(quote)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(AttestationError):
        _verify(pki, bytes(tampered), tee)


@pytest.mark.parametrize("tee", TEES)
def test_collateral_past_next_update_is_refused(pki: IntelTestPki, tee: str) -> None:
    quote = pki.quote(tee, REPORT_DATA)
    # The last second: webpki holds a CRL expired from its nextUpdate on.
    assert _verify(pki, quote, tee, now=pki.validity.not_after - 1).tcb_status == "UpToDate"
    with pytest.raises(AttestationError, match="not valid at the given time"):
        _verify(pki, quote, tee, now=NOW + DAYS * 86400 + 2 * 86400)
    with pytest.raises(AttestationError, match="not valid at the given time"):
        _verify(pki, quote, tee, now=NOW - 2 * 86400)


def test_tcb_info_says_when_it_expires(pki: IntelTestPki) -> None:
    info = json.loads(pki.tcb_info("tdx")[0])
    assert info["nextUpdate"] == "2027-02-14T08:00:00Z"  # NOW + 30 days
    assert info["issueDate"] == "2027-01-14T08:00:00Z"  # NOW - 1 day
    assert (info["id"], info["version"], json.loads(pki.qe_identity("tdx")[0])["id"]) == (
        "TDX",
        3,
        "TD_QE",
    )


def test_collateral_of_the_other_tee_is_refused(pki: IntelTestPki) -> None:
    quote = pki.quote("sgx", REPORT_DATA)
    with pytest.raises(AttestationError, match="QE Identity id/version"):
        verify_dcap(quote, _collateral(pki, "tdx"), tee="sgx", now=NOW, root=pki.root)


def test_bad_arguments_are_usage_errors(pki: IntelTestPki) -> None:
    with pytest.raises(UsageError, match="report data"):
        pki.quote("sgx", bytes(32))
    with pytest.raises(UsageError, match="sgx or tdx"):
        pki.quote("sev-snp", REPORT_DATA)
    with pytest.raises(UsageError, match="PCK TCB level"):
        pki.quote("tdx", REPORT_DATA, pck_tcb="ancient")
    with pytest.raises(UsageError, match="MRTD"):
        pki.quote("tdx", REPORT_DATA, mr_td=bytes(32))
    with pytest.raises(UsageError, match="one day"):
        IntelTestPki.generate(now=NOW, days=0)
    with pytest.raises(UsageError, match="FMSPC"):
        IntelTestPki.generate(now=NOW, fmspc=bytes(5))


# -- sharing the PKI between processes ------------------------------------------------------


def test_save_load_round_trip(pki: IntelTestPki, tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    pki.save(directory)
    keys = sorted(directory.glob("*.key.pem"))
    assert len(keys) == 5
    assert all(stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keys)
    loaded = IntelTestPki.load(directory)
    assert loaded.root_der == pki.root_der
    assert loaded.collateral_json("sgx") == pki.collateral_json("sgx")
    for tee in TEES:
        assert _verify(pki, loaded.quote(tee, REPORT_DATA), tee).tcb_status == "UpToDate"
    with pytest.raises(UsageError, match="exists already"):
        pki.save(directory)


def test_load_refuses_what_save_did_not_write(pki: IntelTestPki, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        IntelTestPki.load(tmp_path)
    directory = tmp_path / "pki"
    pki.save(directory)
    root_key, pck_key = directory / "root.key.pem", directory / "pck-up-to-date.key.pem"
    root_pem = root_key.read_bytes()
    root_key.write_bytes(pck_key.read_bytes())
    with pytest.raises(UsageError, match="not the key of certificate root"):
        IntelTestPki.load(directory)
    root_key.write_bytes(root_pem)
    (directory / "intel-pki.json").write_text('{"format": "something else"}')
    with pytest.raises(UsageError, match="not an emulated Intel PKI"):
        IntelTestPki.load(directory)


# -- the local PCCS -------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize("pck_tcb", ["up-to-date", "out-of-date"])
def test_fetch_collateral_from_the_emulated_pccs(
    pki: IntelTestPki, pccs: PccsServer, tee: str, pck_tcb: str
) -> None:
    quote = pki.quote(tee, REPORT_DATA, pck_tcb=pck_tcb)
    collateral = fetch_collateral(quote, pccs.url)
    assert collateral.pck_chain == check_quote_layout(quote, root=pki.root).pck_chain
    claims = verify_dcap(quote, collateral, tee=tee, now=NOW, root=pki.root)
    assert claims.tcb_status == ("UpToDate" if pck_tcb == "up-to-date" else "OutOfDate")
    assert claims.report_data == REPORT_DATA


def test_pccs_speaks_the_pcs_v4_api(pki: IntelTestPki) -> None:
    fmspc = pki.fmspc.hex().upper()
    status, headers, body = respond(pki, f"/tdx/certification/v4/tcb?fmspc={fmspc}")
    assert status == 200
    assert headers["TCB-Info-Issuer-Chain"].startswith("-----BEGIN%20CERTIFICATE-----%0A")
    text, signature = pki.tcb_info("tdx")
    assert body.decode() == f'{{"tcbInfo":{text},"signature":"{signature.hex()}"}}'
    status, headers, body = respond(pki, "/sgx/certification/v4/pckcrl?ca=platform&encoding=der")
    assert (status, body) == (200, pki.pck_crl)
    assert "SGX-PCK-CRL-Issuer-Chain" in headers
    status, _, body = respond(pki, "/sgx/certification/v4/rootcacrl")
    assert (status, bytes.fromhex(body.decode())) == (200, pki.root_ca_crl)
    _, headers, _ = respond(pki, "/sgx/certification/v4/qe/identity?update=standard")
    assert "SGX-Enclave-Identity-Issuer-Chain" in headers
    for target in (
        "/tdx/certification/v4/tcb?fmspc=000000000000",
        "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
        "/tdx/certification/v4/rootcacrl",
        "/sgx/certification/v3/tcb",
        "/",
    ):
        assert respond(pki, target)[0] == 404, target


def test_pccs_answers_over_http(pki: IntelTestPki, pccs: PccsServer) -> None:
    url = f"{pccs.url}/sgx/certification/v4/qe/identity"
    with urllib.request.urlopen(url) as response:  # noqa: S310 - a loopback URL of our own
        assert json.loads(response.read())["enclaveIdentity"]["id"] == "QE"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{pccs.url}/nothing")  # noqa: S310

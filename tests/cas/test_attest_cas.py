"""``verify_cas`` / ``attest_cas`` in-process: a fake CAS answers the identity request
(with sim evidence, or evidence of in-memory test PKIs), so each check can be broken alone."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from securetf.attestation import Collateral, load_or_create_platform_key
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.collateral import CollateralSource
from securetf.attestation.emulated.amd import AmdTestPki
from securetf.attestation.emulated.intel import IntelTestPki
from securetf.attestation.sim_producer import SimProducer
from securetf.client.cas_attest import expected_references, verify_cas
from securetf.crypto import Certificate, SigningKey
from securetf.crypto.x509ca import EcKey, self_signed
from securetf.errors import AttestationError, UsageError
from securetf.protocol import CasIdentityDoc, cas_report_data

# The module, not the function of the same name that securetf.client exports.
attest_mod = importlib.import_module("securetf.client.cas_attest")

URL = "https://cas.test:8081"
PACKAGE = b"\x42" * 32
ALLOW_EMULATED = ("sgx", "tdx", "sev-snp", "test-roots")

#: ``report_data -> (evidence, vcek)`` of one TEE.
Make = Callable[[bytes], tuple[bytes, bytes | None]]


def _cert() -> bytes:
    return self_signed(
        EcKey.generate(), "securetf CAS", ["cas.test"], now=time.time(), valid_days=1
    )


@dataclass
class FakeCas:
    """Answers ``GET /v1/identity`` like a CAS on ``tee``; each part can be swapped."""

    tee: str
    make: Make
    certificate_pem: bytes
    audit: SigningKey
    #: The certificate presented in the TLS handshake (default: the document's).
    presented_pem: bytes | None = None
    #: The certificate the evidence binds (default: the document's).
    bound_pem: bytes | None = None

    def fetch(self, url: str, nonce: bytes) -> tuple[CasIdentityDoc, bytes]:
        bound = Certificate.load(self.bound_pem or self.certificate_pem).der
        evidence, vcek = self.make(cas_report_data(bound, self.audit.verify_key().raw(), nonce))
        doc = CasIdentityDoc(
            tee=self.tee,
            evidence=evidence,
            certificate_pem=self.certificate_pem.decode(),
            audit_public_key=self.audit.verify_key().to_text(),
            measurement="sha256:" + PACKAGE.hex(),
            vcek=vcek,
        )
        return doc, Certificate.load(self.presented_pem or self.certificate_pem).der


@dataclass(frozen=True)
class Pkis:
    intel: IntelTestPki
    amd: AmdTestPki
    home: Path

    @property
    def roots(self) -> EmulatedRoots:
        return EmulatedRoots(intel=self.intel.root, amd=self.amd.roots())

    def make(self, tee: str, *, attach_vcek: bool = True) -> Make:
        if tee == "sim":
            producer = SimProducer(PACKAGE, home=self.home)
            return lambda data: (producer.evidence(data).data, None)
        if tee == "sev-snp":
            vcek = self.amd.vcek_der() if attach_vcek else None
            return lambda data: (self.amd.report(data), vcek)
        return lambda data: (self.intel.quote(tee, data), None)

    def source(self, **kwargs: Any) -> CollateralSource:
        """A collateral source whose 'PCCS' and 'KDS' are the test PKIs."""
        return CollateralSource(
            pccs_url="http://pccs.test",
            kds_url="http://kds.test",
            fetch_dcap=lambda quote, url: Collateral.load(
                self.intel.collateral_json("tdx" if quote[4:8] == b"\x81\0\0\0" else "sgx").encode()
            ),
            fetch_vcek=lambda url, report: self.amd.vcek_der(),
            test_roots=[self.intel.root],
            **kwargs,
        )


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> Pkis:
    now = int(time.time())
    home = tmp_path_factory.mktemp("sim-home")
    return Pkis(IntelTestPki.generate(now=now), AmdTestPki.generate(now=now), home)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, pkis: Pkis) -> Callable[..., FakeCas]:
    """``serve(tee, **changes)``: the fake CAS that ``verify_cas`` will reach."""

    def start(tee: str, *, make: Make | None = None, **changes: Any) -> FakeCas:
        cas = FakeCas(tee, make or pkis.make(tee), _cert(), SigningKey.generate(), **changes)
        monkeypatch.setattr(attest_mod, "_fetch_identity", cas.fetch)
        return cas

    return start


def _sim_trust(pkis: Pkis) -> list[Any]:
    return [load_or_create_platform_key(pkis.home).verify_key()]


def _reference(pkis: Pkis, tee: str, serve: Callable[..., FakeCas]) -> dict[str, Any]:
    """The reference values of ``tee`` evidence of the test PKIs (an unchecked attest)."""
    serve(tee)
    result = verify_cas(
        URL,
        now=int(time.time()),
        allowed_tees=ALLOW_EMULATED,
        test_roots=pkis.roots,
        collateral=pkis.source(),
    )
    assert not result.code_checked
    return dict(result.reference)


# -- the binding of certificate, audit key and nonce ----------------------------------------


@pytest.mark.parametrize("tee", ["sim", "tdx"])
def test_a_cas_presenting_another_certificate_than_its_evidence_binds_is_refused(
    serve: Callable[..., FakeCas], pkis: Pkis, tee: str
) -> None:
    serve(tee, presented_pem=_cert())
    with pytest.raises(AttestationError, match="another certificate"):
        verify_cas(
            URL,
            now=int(time.time()),
            allowed_tees=(*ALLOW_EMULATED, "sim"),
            sim_trust=_sim_trust(pkis),
            test_roots=pkis.roots,
            collateral=pkis.source(),
        )


@pytest.mark.parametrize("tee", ["sim", "sgx", "tdx", "sev-snp"])
def test_evidence_made_for_another_certificate_is_refused(
    serve: Callable[..., FakeCas], pkis: Pkis, tee: str
) -> None:
    # The document names the presented certificate, the evidence binds another one.
    serve(tee, bound_pem=_cert())
    with pytest.raises(AttestationError, match="report data"):
        verify_cas(
            URL,
            now=int(time.time()),
            allowed_tees=(*ALLOW_EMULATED, "sim"),
            sim_trust=_sim_trust(pkis),
            test_roots=pkis.roots,
            collateral=pkis.source(),
        )


# -- hardware ------------------------------------------------------------------------------


@pytest.mark.parametrize("tee", ["sgx", "tdx", "sev-snp"])
def test_hardware_evidence_with_its_reference_passes(
    serve: Callable[..., FakeCas], pkis: Pkis, tee: str
) -> None:
    reference = _reference(pkis, tee, serve)
    cas = serve(tee)
    result = verify_cas(
        URL,
        now=int(time.time()),
        expect_reference=reference,
        allowed_tees=ALLOW_EMULATED,
        test_roots=pkis.roots,
        collateral=pkis.source(),
    )
    assert result.code_checked
    assert result.claims.test_roots
    assert result.pin.tee == tee
    assert result.pin.measurement == f"{tee}:{result.claims.measurement.hex()}"
    assert result.pin.certificate_pem == cas.certificate_pem.decode()


def test_test_roots_verify_but_are_accepted_only_when_named(
    serve: Callable[..., FakeCas], pkis: Pkis
) -> None:
    serve("tdx")
    with pytest.raises(AttestationError, match="names test-roots"):
        verify_cas(
            URL,
            now=int(time.time()),
            allowed_tees=("tdx",),
            test_roots=pkis.roots,
            collateral=pkis.source(),
        )


def test_hardware_evidence_needs_collateral(serve: Callable[..., FakeCas], pkis: Pkis) -> None:
    serve("sgx")
    with pytest.raises(AttestationError, match="--pccs"):
        verify_cas(URL, now=int(time.time()), allowed_tees=ALLOW_EMULATED, test_roots=pkis.roots)
    serve("sev-snp", make=pkis.make("sev-snp", attach_vcek=False))
    with pytest.raises(AttestationError, match="--kds"):
        verify_cas(URL, now=int(time.time()), allowed_tees=ALLOW_EMULATED, test_roots=pkis.roots)


def test_an_snp_cas_without_a_vcek_gets_it_from_the_source(
    serve: Callable[..., FakeCas], pkis: Pkis
) -> None:
    serve("sev-snp", make=pkis.make("sev-snp", attach_vcek=False))
    result = verify_cas(
        URL,
        now=int(time.time()),
        allowed_tees=ALLOW_EMULATED,
        test_roots=pkis.roots,
        collateral=pkis.source(),
    )
    assert result.claims.tee == "sev-snp"


def test_a_wrong_attached_vcek_falls_back_to_the_source(
    serve: Callable[..., FakeCas], pkis: Pkis
) -> None:
    # The host attached the VCEK of another TCB (stale): it did not sign the report.
    stale = pkis.amd.vcek_der({"snp": pkis.amd.tcb["snp"] + 1})

    def make(data: bytes) -> tuple[bytes, bytes | None]:
        return pkis.amd.report(data), stale

    serve("sev-snp", make=make)
    result = verify_cas(
        URL,
        now=int(time.time()),
        allowed_tees=ALLOW_EMULATED,
        test_roots=pkis.roots,
        collateral=pkis.source(),
    )
    assert result.claims.tee == "sev-snp"
    # Without a source, the attached VCEK is all there is.
    with pytest.raises(AttestationError):
        verify_cas(URL, now=int(time.time()), allowed_tees=ALLOW_EMULATED, test_roots=pkis.roots)


def test_an_unchecked_hardware_cas_is_accepted_with_a_warning(
    serve: Callable[..., FakeCas], pkis: Pkis, caplog: pytest.LogCaptureFixture
) -> None:
    serve("tdx")
    with caplog.at_level(logging.WARNING, logger=attest_mod.__name__):
        pin = attest_mod.attest_cas(
            URL,
            now=int(time.time()),
            allowed_tees=ALLOW_EMULATED,
            test_roots=pkis.roots,
            collateral=pkis.source(),
        )
    assert pin.tee == "tdx"
    assert "NOT checked" in caplog.text
    assert "mr_td" in caplog.text  # its reference values, named


def test_a_wrong_expected_value_is_named(serve: Callable[..., FakeCas], pkis: Pkis) -> None:
    reference = {**_reference(pkis, "tdx", serve), "rtmr2": "ab" * 48}
    serve("tdx")
    with pytest.raises(
        AttestationError, match=f"rtmr2 is [0-9a-f]+, the policy expects {'ab' * 48}"
    ):
        verify_cas(
            URL,
            now=int(time.time()),
            expect_reference=reference,
            allowed_tees=ALLOW_EMULATED,
            test_roots=pkis.roots,
            collateral=pkis.source(),
        )


# -- sim, as before -----------------------------------------------------------------------


def test_a_sim_cas_still_attests(serve: Callable[..., FakeCas], pkis: Pkis) -> None:
    serve("sim")
    trust = _sim_trust(pkis)
    result = verify_cas(URL, now=int(time.time()), allowed_tees=("sim",), sim_trust=trust)
    assert result.pin.measurement == "sha256:" + PACKAGE.hex()
    assert result.reference == {}
    pin = attest_mod.attest_cas(
        URL,
        now=int(time.time()),
        expect_measurement="sha256:" + PACKAGE.hex(),
        allowed_tees=("sim",),
        sim_trust=trust,
    )
    assert pin.tee == "sim"
    with pytest.raises(AttestationError, match="not one the policy expects"):
        verify_cas(
            URL,
            now=int(time.time()),
            expect_measurement="sha256:" + "00" * 32,
            allowed_tees=("sim",),
            sim_trust=trust,
        )
    # Hardware expectations never match sim evidence.
    with pytest.raises(AttestationError, match="runs on sim"):
        verify_cas(
            URL,
            now=int(time.time()),
            expect_measurement="tdx:" + "00" * 48,
            allowed_tees=("sim",),
            sim_trust=trust,
        )
    with pytest.raises(AttestationError, match="runs on sim"):
        verify_cas(
            URL,
            now=int(time.time()),
            expect_reference={"mr_enclave": "00" * 32},
            allowed_tees=("sim",),
            sim_trust=trust,
        )


def test_sim_is_refused_unless_allowed(serve: Callable[..., FakeCas], pkis: Pkis) -> None:
    serve("sim")
    with pytest.raises(AttestationError, match="not allowed"):
        verify_cas(URL, now=int(time.time()), sim_trust=_sim_trust(pkis))


# -- expected values -----------------------------------------------------------------------


SGX = {"mr_enclave": "11" * 32}
TDX = {"mr_td": "22" * 48, **{f"rtmr{i}": "33" * 48 for i in range(4)}}
SNP = {"measurement": "44" * 48, "min_tcb": {"bootloader": 1, "tee": 0, "snp": 8, "microcode": 9}}


@pytest.mark.parametrize(
    ("value", "tees"),
    [
        (SGX, ["sgx"]),
        (TDX, ["tdx"]),
        (SNP, ["sev-snp"]),
        ({"tee": "tdx", "reference": TDX, "status": "UpToDate"}, ["tdx"]),
        ({"sgx": SGX, "sev-snp": [SNP, SNP]}, ["sgx", "sev-snp"]),
    ],
)
def test_expected_references_forms(value: dict[str, Any], tees: list[str]) -> None:
    refs = expected_references(value)
    assert [t for t in ("sgx", "tdx", "sev-snp") if getattr(refs, t.replace("-", "_"))] == tees


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"nothing": "known"},
        {"mr_td": "22" * 48},  # no RTMRs
        {"mr_enclave": "zz"},
        {"tee": "sim", "reference": {}},
        {"tdx": []},
    ],
)
def test_malformed_expected_references_are_usage_errors(value: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        expected_references(value)


@pytest.mark.parametrize(
    "text", ["sha256:00", "tdx:" + "00" * 32, "sgx:" + "00" * 48, "mrtd:" + "00" * 48, "00" * 32]
)
def test_malformed_expected_measurements_are_usage_errors(
    serve: Callable[..., FakeCas], text: str
) -> None:
    serve("sim")
    with pytest.raises(UsageError, match="--expect-measurement"):
        verify_cas(URL, now=int(time.time()), expect_measurement=text, allowed_tees=("sim",))

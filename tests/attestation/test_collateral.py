"""Where collateral comes from: expiry of the real collateral, the cache, the offline bundle,
a PCCS and a KDS over real HTTP on 127.0.0.1, and the errors when nothing valid is left."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import logging
import os
import sys
import threading
import types
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from securetf.attestation import Collateral, verify_dcap, verify_snp
from securetf.attestation.collateral import (
    BUNDLE_VERSION,
    CollateralSource,
    DcapBundleEntry,
    SnpBundleEntry,
    add_to_bundle,
    collateral_expiry,
    make_bundle,
    read_bundle,
)
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError
from tests.attestation import snp_pki
from tests.attestation.vectors import (
    DCAP,
    SNP_AT,
    DcapVector,
    snp_report,
    snp_vcek,
    vector_bytes,
)

IDS = [v.name for v in DCAP]
SGX = DCAP[0]
# The earliest part of each vector's collateral, read off the files by hand.
EXPECTED_EXPIRY = {
    "sgx-v3": ("2025-07-19T10:01:18Z", "QE identity nextUpdate"),
    "tdx-v4": ("2025-07-19T10:00:35Z", "PCK CRL nextUpdate"),
    "tdx-v5": ("2026-11-06T23:45:11Z", "QE identity nextUpdate"),
}
VCEK_NOT_AFTER = 1901474623  # 2030-04-03, the real Milan VCEK's notAfter


def unix(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso).timestamp())


def iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def collateral_text(v: DcapVector) -> str:
    return vector_bytes(v.collateral_file).decode()


def with_tcb_next_update(text: str, t: int) -> str:
    """``text`` with tcbInfo.nextUpdate moved to ``t`` (no longer signed: fine for expiry)."""
    fields = json.loads(text)
    tcb = json.loads(fields["tcb_info"])
    tcb["nextUpdate"] = iso(t)
    fields["tcb_info"] = json.dumps(tcb)
    return json.dumps(fields)


# -- a tiny HTTP server on 127.0.0.1 serving whatever the test sets ------------------------


@dataclass
class Server:
    port: int = 0
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, path: str, body: bytes | str, status: int = 200) -> None:
        self.routes[path] = (status, body.encode() if isinstance(body, str) else body)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            path = urllib.parse.urlsplit(self.path).path
            status, body = state.routes.get(path, state.routes.get("*", (404, b"not found")))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def http_get(url: str) -> bytes:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise OSError(f"HTTP {response.status} from {url}")
    return body


def pccs_over_http(quote: bytes, pccs_url: str) -> Collateral:
    """A DCAP fetcher that GETs <pccs_url>/collateral (the test's server decides the body)."""
    return Collateral.load(http_get(f"{pccs_url}/collateral"))


def kds_over_http(kds_url: str, report: bytes) -> bytes:
    """A VCEK fetcher shaped like AMD's KDS API (the test's server decides the body)."""
    chip = report[0x1A0:0x1E0].hex()
    return http_get(f"{kds_url}/vcek/v1/Milan/{chip}")


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.exists() else []


# -- expiry -----------------------------------------------------------------------------


def parts_by_hand(text: str) -> dict[str, int]:
    """Every expiring part of dcap-qvl collateral, read independently of the module."""
    fields = json.loads(text)
    parts = {
        "tcbInfo": unix(json.loads(fields["tcb_info"])["nextUpdate"]),
        "QE identity": unix(json.loads(fields["qe_identity"])["nextUpdate"]),
    }
    for key in ("root_ca_crl", "pck_crl"):
        crl = x509.load_der_x509_crl(bytes.fromhex(fields[key]))
        assert crl.next_update_utc is not None
        parts[key] = int(crl.next_update_utc.timestamp())
    chains = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")
    for key in (*chains, "pck_certificate_chain"):
        if key not in fields:
            continue
        for i, cert in enumerate(x509.load_pem_x509_certificates(fields[key].encode())):
            parts[f"{key}[{i}]"] = int(cert.not_valid_after_utc.timestamp())
    return parts


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_expiry_of_the_real_collateral_is_the_earliest_part(v: DcapVector) -> None:
    text = collateral_text(v)
    parts = parts_by_hand(text)
    assert len(parts) >= 10
    expiry = collateral_expiry(text)
    assert expiry == min(parts.values())
    assert iso(expiry) == EXPECTED_EXPIRY[v.name][0]
    # The documented verification time lies inside the window, and verification agrees.
    assert v.at < expiry
    verify_dcap(v.quote, Collateral.load(text.encode()), tee=v.tee, now=expiry - 1)
    with pytest.raises(AttestationError):
        verify_dcap(v.quote, Collateral.load(text.encode()), tee=v.tee, now=expiry + 1)


def test_expiry_follows_each_part_and_reads_pem_crls() -> None:
    text = collateral_text(SGX)
    earlier = SGX.at + 1000
    assert collateral_expiry(with_tcb_next_update(text, earlier)) == earlier
    fields = json.loads(text)
    crl = x509.load_der_x509_crl(bytes.fromhex(fields["pck_crl"]))
    fields["pck_crl"] = crl.public_bytes(serialization.Encoding.PEM).decode()
    assert collateral_expiry(json.dumps(fields)) == collateral_expiry(text)


_NOT_COLLATERAL = {"not json": "{not", "a list": "[1]", "too large": "x" * (1024 * 1024 + 1)}


def _broken(change: str) -> str:
    """The SGX vector's collateral with one part broken as ``change`` says, or one of the
    ``_NOT_COLLATERAL`` texts (read at test time, so that a missing ../shared skips)."""
    if change in _NOT_COLLATERAL:
        return _NOT_COLLATERAL[change]
    fields = json.loads(collateral_text(SGX))
    if change == "no tcb_info":
        del fields["tcb_info"]
    elif change == "tcb_info not json":
        fields["tcb_info"] = "{"
    elif change == "no nextUpdate":
        fields["qe_identity"] = json.dumps({"id": "QE"})
    elif change == "naive nextUpdate":
        fields["qe_identity"] = json.dumps({"nextUpdate": "2025-07-19T10:01:18"})
    elif change == "bad date":
        fields["tcb_info"] = json.dumps({"nextUpdate": "next tuesday"})
    elif change == "crl not hex":
        fields["root_ca_crl"] = "zz"
    elif change == "crl not a crl":
        fields["pck_crl"] = "3003020101"
    elif change == "chain garbage":
        fields["tcb_info_issuer_chain"] = "-----BEGIN CERTIFICATE-----\nAAAA\n"
    elif change == "chain missing":
        del fields["pck_crl_issuer_chain"]
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("a list", "not a JSON object"),
        ("too large", "larger than"),
        ("no tcb_info", "tcb_info is missing"),
        ("tcb_info not json", "tcb_info is not JSON"),
        ("no nextUpdate", "enclaveIdentity.nextUpdate is not a date-time"),
        ("naive nextUpdate", "has no time zone"),
        ("bad date", "tcbInfo.nextUpdate 'next tuesday' is not an ISO 8601"),
        ("crl not hex", "root_ca_crl is not an X.509 CRL"),
        ("crl not a crl", "pck_crl is not an X.509 CRL"),
        ("chain garbage", "tcb_info_issuer_chain is not a PEM certificate chain"),
        ("chain missing", "pck_crl_issuer_chain is missing"),
    ],
    ids=lambda x: str(x)[:20],
)
def test_malformed_collateral_is_a_clear_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        collateral_expiry(_broken(text))


# -- DCAP: cache, bundle, PCCS -------------------------------------------------------------


@pytest.mark.parametrize("v", DCAP, ids=IDS)
def test_pccs_fetch_is_cached_and_a_cache_hit_does_not_fetch_again(
    v: DcapVector, server: Server, tmp_path: Path
) -> None:
    server.serve("/collateral", collateral_text(v))
    cache = tmp_path / "cache"
    source = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    first = source.dcap(v.tee, v.quote, now=v.at)
    assert len(server.hits) == 1
    assert verify_dcap(v.quote, first, tee=v.tee, now=v.at).tcb_status == v.status
    # The same source, and a new one on the same directory (a restarted CAS): no fetch.
    again = source.dcap(v.tee, v.quote, now=v.at + 60)
    restarted = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    later = restarted.dcap(v.tee, v.quote, now=collateral_expiry(collateral_text(v)) - 1)
    assert len(server.hits) == 1
    for collateral in (again, later):
        assert verify_dcap(v.quote, collateral, tee=v.tee, now=v.at).tcb_status == v.status
    (entry,) = cache_files(cache)
    assert entry.name.startswith(f"dcap-{v.tee}-")
    assert entry.suffix == ".json"
    assert entry.stat().st_mode & 0o777 == 0o600
    assert json.loads(entry.read_text())["expiry"] == collateral_expiry(collateral_text(v))


def test_an_expired_cache_entry_is_refetched(server: Server, tmp_path: Path) -> None:
    real = collateral_text(SGX)
    soon = SGX.at + 100
    server.serve("/collateral", with_tcb_next_update(real, soon))
    source = CollateralSource(
        pccs_url=server.url, cache_dir=tmp_path / "c", fetch_dcap=pccs_over_http
    )
    source.dcap("sgx", SGX.quote, now=SGX.at)
    source.dcap("sgx", SGX.quote, now=soon - 1)
    assert len(server.hits) == 1
    # At its expiry the entry is stale: the PCCS (now serving fresh collateral) is asked.
    server.serve("/collateral", real)
    fresh = source.dcap("sgx", SGX.quote, now=soon)
    assert len(server.hits) == 2
    assert verify_dcap(SGX.quote, fresh, tee="sgx", now=soon).tcb_status == SGX.status
    source.dcap("sgx", SGX.quote, now=soon + 1000)
    assert len(server.hits) == 2


def test_a_pccs_answer_that_is_already_expired_is_refused_and_not_cached(
    server: Server, tmp_path: Path
) -> None:
    server.serve("/collateral", collateral_text(SGX))
    cache = tmp_path / "c"
    source = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    late = collateral_expiry(collateral_text(SGX))
    with pytest.raises(AttestationError, match=f"PCCS {server.url} returned collateral that"):
        source.dcap("sgx", SGX.quote, now=late)
    assert cache_files(cache) == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage \xff",
        b'{"version": 1, "tee": "sgx"',
        b"[]",
        b'{"version": 2}',
        "wrong platform",
        "wrong expiry",
        "collateral garbled",
        "directory",
    ],
)
def test_a_corrupt_cache_entry_is_ignored_and_refetched(
    content: bytes | str, server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.serve("/collateral", collateral_text(SGX))
    cache = tmp_path / "c"
    source = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    source.dcap("sgx", SGX.quote, now=SGX.at)
    (entry,) = cache_files(cache)
    good = entry.read_bytes()
    envelope = json.loads(good)
    if content == "wrong platform":
        envelope["pck_chain_sha256"] = "0" * 64
    elif content == "wrong expiry":
        envelope["expiry"] += 10**9
    elif content == "collateral garbled":
        envelope["collateral"]["pck_crl"] = "00"
    if content == "directory":
        entry.unlink()
        entry.mkdir()
    else:
        entry.write_bytes(content if isinstance(content, bytes) else json.dumps(envelope).encode())
    with caplog.at_level(logging.WARNING):
        collateral = source.dcap("sgx", SGX.quote, now=SGX.at)
    assert len(server.hits) == 2
    assert verify_dcap(SGX.quote, collateral, tee="sgx", now=SGX.at).tcb_status == SGX.status
    assert "ignoring unusable collateral cache entry" in caplog.text
    if content != "directory":
        assert entry.read_bytes() == good  # replaced by the fresh answer


def test_a_tampered_cache_entry_is_served_but_cannot_make_verification_pass(
    server: Server, tmp_path: Path
) -> None:
    """The cache is not trusted: the verifier checks Intel's signatures on what it serves."""
    server.serve("/collateral", collateral_text(SGX))
    cache = tmp_path / "c"
    source = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    source.dcap("sgx", SGX.quote, now=SGX.at)
    (entry,) = cache_files(cache)
    envelope = json.loads(entry.read_text())
    # Someone stretches the TCB info's validity (and keeps the envelope consistent).
    later = SGX.at + 86400
    tampered = with_tcb_next_update(json.dumps(envelope["collateral"]), 2 * 10**9)
    envelope["collateral"] = json.loads(tampered)
    envelope["expiry"] = collateral_expiry(tampered)
    entry.write_text(json.dumps(envelope))
    served = source.dcap("sgx", SGX.quote, now=later)
    assert len(server.hits) == 1
    with pytest.raises(AttestationError):
        verify_dcap(SGX.quote, served, tee="sgx", now=later)


def test_a_cache_that_cannot_be_written_does_not_fail_verification(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.serve("/collateral", collateral_text(SGX))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    source = CollateralSource(
        pccs_url=server.url, cache_dir=blocker / "cache", fetch_dcap=pccs_over_http
    )
    with caplog.at_level(logging.WARNING):
        collateral = source.dcap("sgx", SGX.quote, now=SGX.at)
    verify_dcap(SGX.quote, collateral, tee="sgx", now=SGX.at)
    assert "cannot write collateral cache entry" in caplog.text


def test_a_valid_bundle_entry_is_used_without_asking_the_pccs(
    server: Server, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.json"
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))])
    source = CollateralSource(pccs_url=server.url, bundle=bundle, fetch_dcap=pccs_over_http)
    collateral = source.dcap("sgx", SGX.quote, now=SGX.at)
    assert server.hits == []
    assert verify_dcap(SGX.quote, collateral, tee="sgx", now=SGX.at).tcb_status == SGX.status


def test_an_expired_bundle_entry_is_refused_with_the_refresh_message(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))])
    source = CollateralSource(bundle=bundle, cache_dir=tmp_path / "c")
    expiry = collateral_expiry(collateral_text(SGX))
    source.dcap("sgx", SGX.quote, now=expiry - 1)
    expected = (
        f"configure --pccs / SECURETF_PCCS_URL, or refresh the offline bundle at {bundle} "
        f"(expired at {EXPECTED_EXPIRY['sgx-v3'][0]})"
    )
    with pytest.raises(AttestationError) as info:
        source.dcap("sgx", SGX.quote, now=expiry)
    assert expected in str(info.value)
    assert "no PCCS is configured" in str(info.value)
    assert "has no entry" in str(info.value)  # the (empty) cache was tried first


def test_an_expired_bundle_entry_falls_through_to_the_pccs(server: Server, tmp_path: Path) -> None:
    soon = SGX.at + 100
    bundle = tmp_path / "bundle.json"
    stale = with_tcb_next_update(collateral_text(SGX), soon)
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, stale)])
    server.serve("/collateral", collateral_text(SGX))
    source = CollateralSource(pccs_url=server.url, bundle=bundle, fetch_dcap=pccs_over_http)
    source.dcap("sgx", SGX.quote, now=soon - 1)
    assert server.hits == []
    source.dcap("sgx", SGX.quote, now=soon)
    assert len(server.hits) == 1


def test_a_bundle_without_this_platform_says_to_add_it(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    v5 = DCAP[2]
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("tdx", v5.quote, collateral_text(v5))])
    source = CollateralSource(bundle=bundle)
    with pytest.raises(AttestationError, match="or add it to the offline bundle at"):
        source.dcap("tdx", DCAP[1].quote, now=DCAP[1].at)
    assert source.dcap("tdx", v5.quote, now=v5.at) is not None


def test_a_bundle_replaced_on_disk_is_read_again(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    soon = SGX.at + 100
    stale = with_tcb_next_update(collateral_text(SGX), soon)
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, stale)])
    source = CollateralSource(bundle=bundle)
    with pytest.raises(AttestationError, match="refresh the offline bundle"):
        source.dcap("sgx", SGX.quote, now=soon)
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))])
    source.dcap("sgx", SGX.quote, now=soon)


def test_no_source_configured_is_a_clear_error() -> None:
    source = CollateralSource()
    with pytest.raises(AttestationError) as info:
        source.dcap("sgx", SGX.quote, now=SGX.at)
    message = str(info.value)
    assert "no PCCS is configured" in message
    assert "configure --pccs / SECURETF_PCCS_URL, or an offline bundle" in message
    with pytest.raises(AttestationError, match="configure --kds / SECURETF_KDS_URL"):
        source.vcek(snp_report(), now=SNP_AT)


def test_a_missing_bundle_file_is_a_usage_error(tmp_path: Path) -> None:
    source = CollateralSource(bundle=tmp_path / "nope.json")
    with pytest.raises(UsageError, match=r"nope\.json does not exist"):
        source.dcap("sgx", SGX.quote, now=SGX.at)


def test_a_quote_of_another_tee_is_refused_before_any_lookup(server: Server) -> None:
    source = CollateralSource(pccs_url=server.url, fetch_dcap=pccs_over_http)
    with pytest.raises(AttestationError, match="this is a sgx quote, not tdx"):
        source.dcap("tdx", SGX.quote, now=SGX.at)
    with pytest.raises(UsageError, match="sgx or tdx"):
        source.dcap("sev-snp", SGX.quote, now=SGX.at)
    assert server.hits == []


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"<html>garbage</html>"), (200, b'{"tcb_info": 1}'), (500, b"oops"), (404, b"")],
)
def test_a_pccs_that_answers_garbage_is_an_attestation_error_naming_it(
    status: int, body: bytes, server: Server, tmp_path: Path
) -> None:
    server.serve("/collateral", body, status)
    cache = tmp_path / "c"
    source = CollateralSource(pccs_url=server.url, cache_dir=cache, fetch_dcap=pccs_over_http)
    with pytest.raises(AttestationError, match=f"cannot get collateral from the PCCS {server.url}"):
        source.dcap("sgx", SGX.quote, now=SGX.at)
    assert len(server.hits) == 1
    assert cache_files(cache) == []


def test_the_default_pccs_client_answering_garbage_names_the_url(server: Server) -> None:
    server.serve("*", b"garbage")
    source = CollateralSource(pccs_url=f"{server.url}/sgx/certification/v4")
    with pytest.raises(AttestationError, match=f"PCCS {server.url}/sgx/certification/v4"):
        source.dcap("sgx", SGX.quote, now=SGX.at)


def test_the_default_pccs_client_really_asks_the_pccs(server: Server) -> None:
    server.serve("*", b"garbage")
    source = CollateralSource(pccs_url=server.url)
    with pytest.raises(AttestationError):
        source.dcap("sgx", SGX.quote, now=SGX.at)
    assert server.hits, "no request reached the PCCS"


# -- SEV-SNP: VCEK --------------------------------------------------------------------------


def test_vcek_from_the_kds_is_cached_until_its_not_after(server: Server, tmp_path: Path) -> None:
    report, vcek = snp_report(), snp_vcek()
    server.serve(f"/vcek/v1/Milan/{report[0x1A0:0x1E0].hex()}", vcek)
    cache = tmp_path / "c"
    source = CollateralSource(kds_url=server.url, cache_dir=cache, fetch_vcek=kds_over_http)
    assert source.vcek(report, now=SNP_AT) == vcek
    assert source.vcek(report, now=VCEK_NOT_AFTER - 1) == vcek
    assert len(server.hits) == 1
    assert verify_snp(report, vcek, now=SNP_AT).tee == "sev-snp"
    (entry,) = cache_files(cache)
    assert entry.read_bytes() == vcek
    assert entry.stat().st_mode & 0o777 == 0o600
    # At its notAfter the cached VCEK is stale; the KDS has only the same (expired) one.
    with pytest.raises(AttestationError, match="returned a VCEK that expired at 2030-04-03"):
        source.vcek(report, now=VCEK_NOT_AFTER)
    assert len(server.hits) == 2


def test_a_corrupt_cached_vcek_is_ignored(server: Server, tmp_path: Path) -> None:
    report, vcek = snp_report(), snp_vcek()
    server.serve("*", vcek)
    cache = tmp_path / "c"
    source = CollateralSource(kds_url=server.url, cache_dir=cache, fetch_vcek=kds_over_http)
    source.vcek(report, now=SNP_AT)
    (entry,) = cache_files(cache)
    for corrupt in (b"", vcek[:-1], b"garbage", vcek + b"\0"):
        entry.write_bytes(corrupt)
        assert source.vcek(report, now=SNP_AT) == vcek
        assert entry.read_bytes() == vcek
    assert len(server.hits) == 5


def test_vcek_through_an_offline_bundle(tmp_path: Path) -> None:
    report, vcek = snp_report(), snp_vcek()
    bundle = tmp_path / "bundle.json"
    add_to_bundle(bundle, [SnpBundleEntry.for_report(report, vcek)])
    source = CollateralSource(bundle=bundle)
    got = source.vcek(report, now=SNP_AT)
    assert got == vcek
    assert verify_snp(report, got, now=SNP_AT).measurement.hex().startswith("7a1e5c26")
    with pytest.raises(AttestationError) as info:
        source.vcek(report, now=VCEK_NOT_AFTER)
    assert (
        f"configure --kds / SECURETF_KDS_URL, or refresh the offline bundle at {bundle} "
        "(expired at 2030-04-03T" in str(info.value)
    )


def test_a_pem_vcek_enters_the_bundle_as_der() -> None:
    report, vcek = snp_report(), snp_vcek()
    pem = Certificate.load(vcek).pem()
    assert SnpBundleEntry.for_report(report, pem).vcek == vcek


def _other_chip_vcek() -> tuple[bytes, bytes]:
    """A synthetic report and the VCEK of its chip (a test AMD PKI)."""
    pki = snp_pki.FakeAmdPki.make()
    key = ec.generate_private_key(ec.SECP384R1())
    spl = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
    chip = bytes(range(64))
    vcek = pki.vcek(key, hwid=chip, spl=spl)
    report = snp_pki.make_report(key, chip_id=chip, tcb=snp_pki.tcb_bytes("Milan", spl))
    return report, vcek


def test_a_kds_answering_another_chips_vcek_is_refused_and_not_cached(
    server: Server, tmp_path: Path
) -> None:
    _, wrong = _other_chip_vcek()
    server.serve("*", wrong)
    cache = tmp_path / "c"
    source = CollateralSource(kds_url=server.url, cache_dir=cache, fetch_vcek=kds_over_http)
    with pytest.raises(AttestationError, match=f"KDS {server.url}.*did not sign"):
        source.vcek(snp_report(), now=SNP_AT)
    assert cache_files(cache) == []
    with pytest.raises(AttestationError, match="did not sign"):
        SnpBundleEntry.for_report(snp_report(), wrong)


@pytest.mark.parametrize(("status", "body"), [(200, b"garbage"), (404, b"Not Found")])
def test_a_kds_answering_garbage_is_an_attestation_error_naming_it(
    status: int, body: bytes, server: Server
) -> None:
    server.serve("*", body, status)
    source = CollateralSource(kds_url=server.url, fetch_vcek=kds_over_http)
    expected = f"cannot get the VCEK from the AMD KDS {server.url}"
    with pytest.raises(AttestationError, match=expected):
        source.vcek(snp_report(), now=SNP_AT)


def test_a_report_with_a_masked_chip_id_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    report = snp_pki.make_report(key, chip_id=bytes(64), tcb=bytes(8))
    source = CollateralSource(kds_url="http://127.0.0.1:9", fetch_vcek=kds_over_http)
    with pytest.raises(AttestationError, match="masks its chip id"):
        source.vcek(report, now=SNP_AT)


def test_the_default_vcek_fetcher_is_securetf_attestation_kds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, bytes]] = []

    def fetch_vcek(kds_url: str, report: bytes) -> bytes:
        calls.append((kds_url, report))
        return snp_vcek()

    fake = types.ModuleType("securetf.attestation.kds")
    fake.fetch_vcek = fetch_vcek  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "securetf.attestation.kds", fake)
    source = CollateralSource(kds_url="https://kds.example")
    assert source.vcek(snp_report(), now=SNP_AT) == snp_vcek()
    assert calls == [("https://kds.example", snp_report())]


# -- the bundle file ----------------------------------------------------------------------------


def test_make_bundle_writes_the_documented_format() -> None:
    dcap = DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))
    snp = SnpBundleEntry.for_report(snp_report(), snp_vcek())
    document = json.loads(make_bundle([snp, dcap]))
    assert document == {
        "version": BUNDLE_VERSION,
        "dcap": [
            {
                "tee": "sgx",
                "pck_chain_sha256": dcap.pck_chain_sha256,
                "collateral": json.loads(collateral_text(SGX)),
            }
        ],
        "snp": [
            {
                "chip_id": snp_report()[0x1A0:0x1E0].hex(),
                "reported_tcb": snp_report()[0x180:0x188].hex(),
                "vcek": base64.b64encode(snp_vcek()).decode(),
            }
        ],
    }
    assert len(dcap.pck_chain_sha256) == 64
    with pytest.raises(UsageError, match="two bundle entries"):
        make_bundle([dcap, dcap])


def test_a_bundle_reads_back_what_was_added_and_replaces_same_key_entries(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle.json"
    soon = SGX.at + 100
    stale_text = with_tcb_next_update(collateral_text(SGX), soon)
    stale = DcapBundleEntry.for_quote("sgx", SGX.quote, stale_text)
    snp = SnpBundleEntry.for_report(snp_report(), snp_vcek())
    add_to_bundle(bundle, [stale, snp])
    assert read_bundle(bundle) == [stale, snp]
    fresh = DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))
    add_to_bundle(bundle, [fresh])
    entries = read_bundle(bundle)
    assert entries == [fresh, snp]
    assert entries[0].expiry == collateral_expiry(collateral_text(SGX))


def test_a_collateral_object_from_dcap_qvl_makes_the_same_entry() -> None:
    text = collateral_text(DCAP[2])
    from_text = DcapBundleEntry.for_quote("tdx", DCAP[2].quote, text)
    from_object = DcapBundleEntry.for_quote("tdx", DCAP[2].quote, Collateral.load(text.encode()))
    assert json.loads(from_object.collateral) == json.loads(from_text.collateral)
    assert from_object == DcapBundleEntry(
        tee="tdx", pck_chain_sha256=from_text.pck_chain_sha256, collateral=from_object.collateral
    )


def _valid_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        make_bundle(
            [
                DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX)),
                SnpBundleEntry.for_report(snp_report(), snp_vcek()),
            ]
        )
    )
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "has version 2"),
        (lambda d: d.update(extra=1), "unknown keys: extra"),
        (lambda d: d.update(dcap={}), "dcap is not a list"),
        (lambda d: d["dcap"].append(d["dcap"][0]), r"dcap\[1\] repeats the key"),
        (lambda d: d["dcap"][0].update(tee="sev-snp"), r"dcap\[0\]: .*sgx or tdx"),
        (lambda d: d["dcap"][0].update(tee=["sgx"]), r"dcap\[0\]: .*sgx or tdx"),
        (lambda d: d["dcap"][0].update(pck_chain_sha256="AB"), "64 lowercase hex"),
        (lambda d: d["dcap"][0].update(collateral="x"), "collateral is not a JSON object"),
        (lambda d: d["dcap"][0]["collateral"].pop("pck_crl"), "pck_crl is missing"),
        (lambda d: d["dcap"][0].pop("tee"), "must have exactly the keys"),
        (lambda d: d["snp"][0].update(chip_id="zz"), "must be hex"),
        (lambda d: d["snp"][0].update(vcek="!!"), "vcek base64"),
        (lambda d: d["snp"][0].update(vcek="AAAA"), "VCEK is not a DER or PEM"),
        (lambda d: d["snp"][0].update(reported_tcb="00"), "reported_tcb is not 8 bytes"),
    ],
)
def test_a_malformed_bundle_is_a_usage_error_naming_the_file(
    change: object, message: str, tmp_path: Path
) -> None:
    document = _valid_document()
    assert callable(change)
    change(document)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(document))
    with pytest.raises(UsageError, match=message) as info:
        read_bundle(bundle)
    assert str(bundle) in str(info.value)
    with pytest.raises(UsageError, match=message):
        CollateralSource(bundle=bundle).dcap("sgx", SGX.quote, now=SGX.at)


def test_add_to_bundle_replaces_the_file_atomically(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    add_to_bundle(bundle, [SnpBundleEntry.for_report(snp_report(), snp_vcek())])
    before = os.stat(bundle).st_ino
    add_to_bundle(bundle, [DcapBundleEntry.for_quote("sgx", SGX.quote, collateral_text(SGX))])
    assert os.stat(bundle).st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json"]
    assert len(read_bundle(bundle)) == 2


def test_without_a_kds_client_the_vcek_lookup_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "securetf.attestation.kds", None)  # as if not installed
    source = CollateralSource(kds_url="https://kds.example")
    with pytest.raises(AttestationError, match="no AMD KDS client"):
        source.vcek(snp_report(), now=SNP_AT)

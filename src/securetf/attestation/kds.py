"""AMD's Key Distribution Service (KDS): a chip's VCEK at a TCB, and the ARK's CRL.

Fetching is network I/O: do it before the trust decision, not inside it. Nothing fetched
is trusted: :func:`securetf.attestation.verify_snp` checks the VCEK against the roots, so a
wrong or hostile KDS can only make verification fail.

AMD's interface (VCEK specification #57230, "KDS Interface"; ``kds_url`` is
``https://kdsintf.amd.com`` or a local stand-in such as
:func:`securetf.attestation.emulated.kds.serve_kds`)::

    GET {kds_url}/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..
        the DER VCEK; hwid is the chip id in hex (on Turin its first 8 bytes, and the
        query starts with fmcSPL)
    GET {kds_url}/vcek/v1/{product}/cert_chain    PEM: the ASK, then the ARK
    GET {kds_url}/vcek/v1/{product}/crl           DER: the CRL signed by the ARK
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import IO
from urllib.parse import urlsplit

from cryptography import x509

from securetf.attestation._amd_roots import PRODUCTS
from securetf.attestation.snp_report import SnpReport, TcbVersion, product_from_cpuid
from securetf.crypto import Certificate
from securetf.errors import AttestationError, UsageError

__all__ = ["KDS_URL", "MAX_RESPONSE_SIZE", "fetch_crl", "fetch_vcek", "vcek_url"]

KDS_URL = "https://kdsintf.amd.com"
#: A VCEK is about 1.3 KB and a CRL a few KB; a larger answer is refused unread.
MAX_RESPONSE_SIZE = 64 * 1024
# Query parameters, in the order AMD's tools send them.
_PARAMS = {
    "fmc": "fmcSPL",
    "bootloader": "blSPL",
    "tee": "teeSPL",
    "snp": "snpSPL",
    "microcode": "ucodeSPL",
}
_HINTS = {
    400: " (the KDS does not take this product or TCB)",
    404: " (the KDS knows no VCEK for this chip id and TCB: wrong KDS or product?)",
    429: " (rate-limited by the KDS; retry later)",
}


def _base(kds_url: str) -> str:
    parts = urlsplit(kds_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"a KDS URL is http(s)://host[:port][/path], not {kds_url!r}")
    return kds_url.rstrip("/")


def _check_product(product: str) -> str:
    if product not in PRODUCTS:
        raise UsageError(f"unknown SEV-SNP product {product!r}; use {', '.join(PRODUCTS)}")
    return product


def vcek_url(
    kds_url: str,
    product: str,
    chip_id: bytes,
    reported_tcb: TcbVersion | Mapping[str, int],
) -> str:
    """The KDS URL of the VCEK of ``chip_id`` (64 bytes) at ``reported_tcb``."""
    _check_product(product)
    if len(chip_id) != 64 or not any(chip_id):
        raise UsageError("a chip id is 64 bytes, not all zero (zero is a masked chip id)")
    tcb = reported_tcb.items() if isinstance(reported_tcb, TcbVersion) else dict(reported_tcb)
    parts = [p for p in _PARAMS if p != "fmc" or product == "Turin"]
    missing = [p for p in parts if p not in tcb]
    if missing:
        raise UsageError(f"the reported TCB lacks {', '.join(missing)} for a {product} VCEK")
    hwid = chip_id[:8] if product == "Turin" else chip_id
    query = "&".join(f"{_PARAMS[p]}={tcb[p]:02d}" for p in parts)
    return f"{_base(kds_url)}/vcek/v1/{product}/{hwid.hex()}?{query}"


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another http(s) URL (urllib also allows ftp)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise AttestationError(f"the KDS redirected {req.full_url} to {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _get(url: str, timeout: float) -> bytes:
    """The body of ``url`` (http or https, checked by :func:`_base`), at most the limit."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "securetf"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_RESPONSE_SIZE + 1)
    except urllib.error.HTTPError as exc:
        raise AttestationError(
            f"the KDS answered HTTP {exc.code} for {url}{_HINTS.get(exc.code, '')}"
        ) from None
    except urllib.error.URLError as exc:
        raise AttestationError(f"cannot fetch {url} from the KDS: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise AttestationError(f"cannot fetch {url} from the KDS: {exc}") from None
    if len(body) > MAX_RESPONSE_SIZE:
        raise AttestationError(f"the KDS answered more than {MAX_RESPONSE_SIZE} bytes for {url}")
    if not body:
        raise AttestationError(f"the KDS answered nothing for {url}")
    return body


def fetch_vcek(
    kds_url: str, report: bytes, *, product: str | None = None, timeout: float = 10
) -> bytes:
    """The DER VCEK for the chip and reported TCB of the SEV-SNP ``report``.

    The product comes from the report's CPUID (versions 3 and later); a version 2 report
    needs ``product``. A report whose chip id is masked cannot be matched to a VCEK here:
    its host must attach the certificate table instead.
    """
    parsed = SnpReport.parse(report)
    named = product_from_cpuid(*parsed.cpuid[:2]) if parsed.cpuid is not None else None
    if product is None:
        if named is None:
            raise UsageError(
                "the report does not say which product it comes from (version 2, or an "
                f"unknown CPU); pass product= one of {', '.join(PRODUCTS)}"
            )
        product = named
    elif named is not None and named != product:
        raise AttestationError(f"the report comes from a {named} CPU, not {product}")
    if not any(parsed.chip_id):
        raise AttestationError(
            "the report's chip id is masked (MASK_CHIP_ID): KDS cannot say which chip's VCEK "
            "signed it; use the certificate table its host attaches"
        )
    tcb = TcbVersion.parse(parsed.reported_tcb, _check_product(product))
    url = vcek_url(kds_url, product, parsed.chip_id, tcb)
    body = _get(url, timeout)
    try:
        Certificate.load(body, what="VCEK")
    except UsageError:
        raise AttestationError(f"the KDS answered {url} with something not a certificate") from None
    return body


def fetch_crl(kds_url: str, product: str, *, timeout: float = 10) -> bytes:
    """The DER CRL of ``product``'s ARK (it lists revoked ASKs)."""
    url = f"{_base(kds_url)}/vcek/v1/{_check_product(product)}/crl"
    body = _get(url, timeout)
    try:
        x509.load_der_x509_crl(body)
    except ValueError:
        raise AttestationError(f"the KDS answered {url} with something not a DER CRL") from None
    return body

"""A local AMD KDS for an emulated chip: the same paths and answers as kdsintf.amd.com.

It lets :func:`securetf.attestation.kds.fetch_vcek` (and any KDS client, such as virtee's
``snpguest`` pointed at it) run unchanged against :class:`AmdTestPki`::

    GET /vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=  (Turin: also fmcSPL)
        200 the DER VCEK of that chip at that TCB; 404 for another chip or product;
        400 for a missing, repeated, unknown or out-of-range parameter
    GET /vcek/v1/{product}/cert_chain    200 PEM: ASK, then ARK
    GET /vcek/v1/{product}/crl           200 DER: the ARK's CRL

It is a stdlib :class:`ThreadingHTTPServer` on a background thread, plain HTTP, for tests
and demos on one host.
"""

from __future__ import annotations

import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from securetf._logutil import warn_loudly
from securetf.attestation.emulated._amd_report import TCB_PARTS
from securetf.attestation.emulated.amd import AmdTestPki

__all__ = ["KdsServer", "serve_kds"]

logger = logging.getLogger(__name__)

_PARAMS = {
    "fmc": "fmcSPL",
    "bootloader": "blSPL",
    "tee": "teeSPL",
    "snp": "snpSPL",
    "microcode": "ucodeSPL",
}
_PATH = re.compile(r"/vcek/v1/(?P<product>[A-Za-z]+)/(?P<leaf>[0-9A-Za-z_]+)")
_DER, _PEM = "application/pkix-cert", "application/x-pem-file"
_CRL = "application/pkix-crl"


class _RefusedError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _tcb(pki: AmdTestPki, query: str) -> dict[str, int]:
    """The TCB in the VCEK query: exactly the product's parameters, each once, 0 to 255."""
    values = parse_qs(query, keep_blank_values=True)
    wanted = {_PARAMS[part]: part for part in TCB_PARTS[pki.product]}
    unknown = sorted(set(values) - set(wanted))
    missing = sorted(set(wanted) - set(values))
    if unknown or missing:
        raise _RefusedError(
            HTTPStatus.BAD_REQUEST,
            f"unknown parameters {unknown}, missing parameters {missing}",
        )
    tcb = {}
    for name, part in wanted.items():
        given = values[name]
        if len(given) != 1 or not (given[0].isascii() and given[0].isdigit()):
            raise _RefusedError(HTTPStatus.BAD_REQUEST, f"{name} must be one decimal number")
        if int(given[0]) > 0xFF:
            raise _RefusedError(HTTPStatus.BAD_REQUEST, f"{name} must be 0 to 255")
        tcb[part] = int(given[0])
    return tcb


def _answer(pki: AmdTestPki, target: str) -> tuple[bytes, str]:
    """The body and content type for the request target ``target``."""
    parts = urlsplit(target)
    match = _PATH.fullmatch(parts.path)
    if match is None or match["product"] != pki.product:
        raise _RefusedError(HTTPStatus.NOT_FOUND, f"no such KDS resource {parts.path}")
    leaf = match["leaf"]
    if leaf == "cert_chain":
        return pki.cert_chain_pem(), _PEM
    if leaf == "crl":
        return pki.crl_der(), _CRL
    if leaf.lower() != pki.hwid.hex():
        raise _RefusedError(HTTPStatus.NOT_FOUND, "no VCEK for this hardware id")
    return pki.vcek_der(_tcb(pki, parts.query)), _DER


class _Handler(BaseHTTPRequestHandler):
    pki: AmdTestPki  # set on the subclass serve_kds makes
    server_version = "securetf-emulated-kds"

    def do_GET(self) -> None:  # the name http.server calls
        try:
            body, content_type = _answer(self.pki, self.path)
            status = HTTPStatus.OK
        except _RefusedError as refused:
            body, content_type, status = f"{refused}\n".encode(), "text/plain", refused.status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("emulated KDS: " + format, *args)


class KdsServer:
    """A running local KDS; ``url`` is its base (``http://127.0.0.1:<port>``)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread, url: str) -> None:
        self._httpd, self._thread, self.url = httpd, thread, url

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> KdsServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def serve_kds(pki: AmdTestPki, host: str = "127.0.0.1", port: int = 0) -> KdsServer:
    """Serve ``pki``'s chip as AMD's KDS would, on IPv4 ``host``:``port`` (0: a free port)."""

    class Handler(_Handler):
        pass

    Handler.pki = pki
    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    url = f"http://{host}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="emulated-kds", daemon=True)
    thread.start()
    warn_loudly(logger, "emulated AMD KDS at %s serves a TEST-ONLY PKI", url)
    return KdsServer(httpd, thread, url)

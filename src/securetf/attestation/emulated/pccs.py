"""A local PCCS serving an emulated Intel PKI's collateral over HTTP (tests and demos).

It answers the Intel PCS v4 paths that ``dcap_qvl.get_collateral(pccs_url, quote)``
requests, with the headers and bodies Intel's services send:

- ``/sgx/certification/v4/pckcrl?ca=platform&encoding=der``: the PCK CRL (DER; PEM without
  ``encoding=der``), issuer chain in ``SGX-PCK-CRL-Issuer-Chain``;
- ``/sgx/certification/v4/rootcacrl``: the root CA's CRL as hex text (what a PCCS returns);
- ``/{sgx,tdx}/certification/v4/tcb?fmspc=...``: ``{"tcbInfo": ..., "signature": ...}``,
  issuer chain in ``TCB-Info-Issuer-Chain`` (and the older ``SGX-TCB-Info-Issuer-Chain``);
- ``/{sgx,tdx}/certification/v4/qe/identity``: ``{"enclaveIdentity": ..., "signature":
  ...}``, issuer chain in ``SGX-Enclave-Identity-Issuer-Chain``.

Issuer chains are URL-encoded PEM. The signed JSON objects are embedded byte for byte, so
their signatures hold. Plain HTTP on the loopback by default: it serves public data only.
"""

from __future__ import annotations

import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, quote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from securetf.attestation.emulated.intel import IntelTestPki
from securetf.errors import UsageError

__all__ = ["PccsServer", "respond", "serve_pccs"]

_log = logging.getLogger(__name__)
_PATH = re.compile(r"/(sgx|tdx)/certification/v4/([a-z/]+)")

_Response = tuple[HTTPStatus, dict[str, str], bytes]


def _chain_header(pem: str) -> str:
    return quote(pem, safe="")


def _signed_json(field: str, signed: tuple[str, bytes]) -> bytes:
    text, signature = signed
    return f'{{"{field}":{text},"signature":"{signature.hex()}"}}'.encode()


def _not_found(what: str) -> _Response:
    return HTTPStatus.NOT_FOUND, {"Content-Type": "text/plain"}, f"{what}\n".encode()


def respond(pki: IntelTestPki, target: str) -> _Response:
    """The PCCS's answer to a GET of ``target`` (path and query): status, headers, body."""
    url = urlsplit(target)
    query = {name: values[-1] for name, values in parse_qs(url.query).items()}
    match = _PATH.fullmatch(url.path)
    if match is None:
        return _not_found(f"no such PCCS path: {url.path}")
    tee, resource = match.groups()
    json_type = {"Content-Type": "application/json"}
    tcb_chain = _chain_header(pki.tcb_signing_chain)
    if resource == "tcb":
        if query.get("fmspc", "").upper() != pki.fmspc.hex().upper():
            return _not_found(f"no TCB info for FMSPC {query.get('fmspc')!r}")
        headers = {**json_type, "TCB-Info-Issuer-Chain": tcb_chain}
        headers["SGX-TCB-Info-Issuer-Chain"] = tcb_chain  # PCS v3 spelling, for older clients
        return HTTPStatus.OK, headers, _signed_json("tcbInfo", pki.tcb_info(tee))
    if resource == "qe/identity":
        headers = {**json_type, "SGX-Enclave-Identity-Issuer-Chain": tcb_chain}
        return HTTPStatus.OK, headers, _signed_json("enclaveIdentity", pki.qe_identity(tee))
    if tee == "sgx" and resource == "pckcrl":
        if query.get("ca") != "platform":
            return _not_found("this platform's PCK certificates come from the Platform CA only")
        headers = {"SGX-PCK-CRL-Issuer-Chain": _chain_header(pki.pck_crl_issuer_chain)}
        if query.get("encoding") == "der":
            return HTTPStatus.OK, {**headers, "Content-Type": "application/pkix-crl"}, pki.pck_crl
        pem = x509.load_der_x509_crl(pki.pck_crl).public_bytes(serialization.Encoding.PEM)
        return HTTPStatus.OK, {**headers, "Content-Type": "application/x-pem-file"}, pem
    if tee == "sgx" and resource == "rootcacrl":
        return HTTPStatus.OK, {"Content-Type": "text/plain"}, pki.root_ca_crl.hex().encode()
    return _not_found(f"no such PCCS resource: {url.path}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        status, headers, body = respond(self.server.pki, self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("emulated PCCS: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], pki: IntelTestPki) -> None:
        self.pki = pki
        super().__init__(address, _Handler)


class PccsServer:
    """A running emulated PCCS; :attr:`url` is its base URL. Stop it with :meth:`close`."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="emulated-pccs", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> PccsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_pccs(pki: IntelTestPki, host: str = "127.0.0.1", port: int = 0) -> PccsServer:
    """Serve ``pki``'s collateral on ``host``:``port`` (IPv4; 0: any free port) in a thread."""
    try:
        server = _Server((host, port), pki)
    except OSError as exc:
        raise UsageError(
            f"cannot serve the emulated PCCS on {host}:{port}: {exc.strerror}"
        ) from exc
    running = PccsServer(server)
    _log.warning("emulated PCCS serving TEST collateral (not Intel's) at %s", running.url)
    return running

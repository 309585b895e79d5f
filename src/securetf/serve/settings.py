"""The server's settings and limits, and where its TLS material comes from."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securetf._http.limits import HttpLimits
from securetf._logutil import warn_loudly
from securetf.errors import UsageError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_TIMEOUT_MS",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "ServeSettings",
    "TlsFiles",
    "resolve_tls",
]

#: Largest request body (REST) or message (gRPC) the server reads, in bytes.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: Most rows stacked into one model call.
DEFAULT_MAX_BATCH_SIZE = 32
#: Longest a request waits for others to share its model call, in milliseconds.
DEFAULT_BATCH_TIMEOUT_MS = 5.0
#: Threads answering gRPC calls.
DEFAULT_GRPC_WORKERS = 32

#: Set by ``securetf run`` to the instance's CAS-issued certificate, key and policy CA.
ENV_CERT, ENV_KEY, ENV_CA = "SECURETF_TLS_CERT", "SECURETF_TLS_KEY", "SECURETF_CA_CERT"


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None  # when set, clients must present a certificate it issued


@dataclass(frozen=True)
class ServeSettings:
    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    insecure_no_tls: bool = False
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    grpc_workers: int = DEFAULT_GRPC_WORKERS
    #: gRPC outputs as raw bytes in ``tensor_content`` (TF Serving's
    #: ``--enable_serialization_as_tensor_content``), not in the typed fields.
    grpc_tensor_content: bool = False
    #: How long and how many connections REST clients may hold (timeouts, connection limit).
    http: HttpLimits = field(default_factory=HttpLimits)

    def check(self) -> None:
        for name, port in (("--port", self.port), ("--grpc-port", self.grpc_port)):
            if port is not None and not 0 < port < 65536:
                raise UsageError(f"{name} must be between 1 and 65535")
        if self.grpc_port is not None and self.grpc_port == self.port:
            raise UsageError("--port and --grpc-port must differ")
        if self.max_batch_size < 1:
            raise UsageError("--max-batch-size must be at least 1")
        if self.batch_timeout_ms < 0:
            raise UsageError("--batch-timeout-ms cannot be negative")
        if self.max_request_bytes < 1024:
            raise UsageError("the request size limit must be at least 1 KiB")


def resolve_tls(settings: ServeSettings, env: Mapping[str, str] | None = None) -> TlsFiles | None:
    """The TLS files to serve with: the flags, else the runtime's; ``None`` only if insecure.

    Plain HTTP needs the explicit ``insecure_no_tls`` and warns every time it is used.
    """
    env = os.environ if env is None else env
    if settings.insecure_no_tls:
        if settings.tls_cert or settings.tls_key or settings.client_ca:
            raise UsageError("--insecure-no-tls cannot be combined with TLS options")
        warn_loudly(
            log,
            "SERVING WITHOUT TLS (--insecure-no-tls): inputs, predictions and the model's "
            "answers cross the network in plaintext and clients cannot verify this server",
        )
        return None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and env.get(ENV_CERT) and env.get(ENV_KEY):
        cert, key = Path(env[ENV_CERT]), Path(env[ENV_KEY])
    if cert is None or key is None:
        raise UsageError(
            "no TLS certificate: pass --tls-cert and --tls-key, run under `securetf run` "
            f"(which sets {ENV_CERT} and {ENV_KEY}), or opt out with --insecure-no-tls"
        )
    for path in (cert, key, settings.client_ca):
        if path is not None and not path.is_file():
            raise UsageError(f"TLS file {path} does not exist")
    return TlsFiles(cert=cert, key=key, client_ca=settings.client_ca)

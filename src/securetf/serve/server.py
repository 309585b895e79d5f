"""``securetf serve``: load the models, then answer REST (and gRPC) over TLS until stopped."""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from securetf._http.server import make_server, tls_context
from securetf.errors import UsageError
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository
from securetf.serve.rest import create_app, error_response
from securetf.serve.settings import ServeSettings, TlsFiles, resolve_tls

log = logging.getLogger(__name__)

__all__ = ["rest_server", "serve"]


def _start_grpc(
    settings: ServeSettings, tls: TlsFiles | None, repo: ModelRepository, metrics: ServeMetrics
) -> Any:
    try:
        import grpc

        from securetf.serve.grpc_service import add_services
    except ImportError as exc:
        raise UsageError(
            "--grpc-port needs grpcio and tensorflow-serving-api (the 'serve' extra)"
        ) from exc
    limit = settings.max_request_bytes
    server = grpc.server(
        ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 64 * 1024 * 1024)),
        ],
    )
    add_services(
        server, repo, metrics, max_bytes=limit, tensor_content=settings.grpc_tensor_content
    )
    address = f"{settings.host}:{settings.grpc_port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        client_ca = tls.client_ca.read_bytes() if tls.client_ca else None
        creds = grpc.ssl_server_credentials(
            [(tls.key.read_bytes(), tls.cert.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        bound = server.add_secure_port(address, creds)
    if bound == 0:
        raise UsageError(f"cannot listen for gRPC on {address}")
    server.start()
    return server


#: How long a stopping server waits for open connections before it closes them.
GRACEFUL_SHUTDOWN_SECONDS = 5


def rest_server(
    settings: ServeSettings, tls: TlsFiles | None, repo: ModelRepository, metrics: ServeMetrics
) -> uvicorn.Server:
    """The REST server over ``repo`` with the limits of ``settings``, ready to ``run()``."""
    context = None if tls is None else tls_context(tls.cert, tls.key, client_ca=tls.client_ca)
    return make_server(
        create_app(repo, metrics),
        host=settings.host,
        port=settings.port,
        tls=context,
        limits=settings.http,
        max_body_bytes=settings.max_request_bytes,
        render=error_response,
        # On SIGTERM, open keep-alive connections must not hold the server up forever.
        graceful_shutdown_seconds=GRACEFUL_SHUTDOWN_SECONDS,
    )


def serve(settings: ServeSettings) -> None:
    """Run the server in this thread until SIGINT or SIGTERM."""
    settings.check()
    tls = resolve_tls(settings)
    metrics = ServeMetrics()
    repo = ModelRepository.load(
        settings.model_dir,
        max_batch_size=settings.max_batch_size,
        batch_timeout=settings.batch_timeout_ms / 1000.0,
        on_batch=metrics.on_batch,
    )
    # The loaded models are ~10^5-10^6 Python objects that live as long as the server; a
    # large JSON request allocates enough lists to set off full collections, which would
    # scan them all each time (about half the time of a REST request for an image).
    gc.freeze()
    grpc_server = None
    try:
        if settings.grpc_port is not None:
            grpc_server = _start_grpc(settings, tls, repo, metrics)
        server = rest_server(settings, tls, repo, metrics)
        scheme = "http" if tls is None else "https"
        log.warning(
            "serving %s: REST on %s://%s:%d%s",
            ", ".join(repo.names()),
            scheme,
            settings.host,
            settings.port,
            f", gRPC on {settings.host}:{settings.grpc_port}" if grpc_server else "",
        )
        server.run()
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2).wait()
        repo.close()

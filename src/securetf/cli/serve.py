"""``securetf serve``: TensorFlow Serving's REST and gRPC APIs over TLS for a model directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from securetf.serve.settings import (
    DEFAULT_BATCH_TIMEOUT_MS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_REQUEST_BYTES,
    ServeSettings,
)


def serve_cmd(
    model_dir: Annotated[
        Path, typer.Option(help="Models laid out as NAME/VERSION/ (SavedModel, .keras, .tflite).")
    ],
    port: Annotated[int, typer.Option(help="REST port.")] = 8501,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (none: no gRPC).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    tls_cert: Annotated[
        Path | None, typer.Option(help="Server certificate (default: $SECURETF_TLS_CERT).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Server key (default: $SECURETF_TLS_KEY).")
    ] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="Require client certificates issued by this CA.")
    ] = None,
    insecure_no_tls: Annotated[
        bool, typer.Option("--insecure-no-tls", help="Serve plain HTTP (development only).")
    ] = False,
    max_batch_size: Annotated[
        int, typer.Option(help="Most rows stacked into one model call.")
    ] = DEFAULT_MAX_BATCH_SIZE,
    batch_timeout_ms: Annotated[
        float, typer.Option(help="Longest a request waits for others to batch with.")
    ] = DEFAULT_BATCH_TIMEOUT_MS,
    max_request_mb: Annotated[
        float, typer.Option(help="Largest request body or gRPC message, in MiB.")
    ] = DEFAULT_MAX_REQUEST_BYTES / (1024 * 1024),
    tensor_content: Annotated[
        bool,
        typer.Option(
            "--tensor-content",
            help="gRPC: numeric outputs as raw bytes in tensor_content, not in float_val, "
            "int64_val, ... (TF Serving's --enable_serialization_as_tensor_content).",
        ),
    ] = False,
) -> None:
    """Serve the models under MODEL_DIR until interrupted."""
    from securetf.serve.server import serve  # TensorFlow and the web stack, on demand

    logging.basicConfig(level=logging.WARNING, format="securetf serve: %(message)s")
    if insecure_no_tls:
        typer.secho(
            "WARNING: --insecure-no-tls: plain HTTP, no client can verify this server",
            err=True,
            fg="red",
            bold=True,
        )
    serve(
        ServeSettings(
            model_dir=model_dir,
            host=host,
            port=port,
            grpc_port=grpc_port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
            insecure_no_tls=insecure_no_tls,
            max_batch_size=max_batch_size,
            batch_timeout_ms=batch_timeout_ms,
            max_request_bytes=int(max_request_mb * 1024 * 1024),
            grpc_tensor_content=tensor_content,
        )
    )

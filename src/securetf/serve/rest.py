"""TensorFlow Serving's REST API over FastAPI; thin handlers over the repository and codec.

Every error is ``{"error": message}``: 400 for malformed input, 404 for an unknown model or
version, 408 for a body that arrives too slowly, 413 for a body over the limit, 500 only for
a failure of the server itself. The body limits are the server's (securetf._http.BodyGuard):
they act while the body streams in, before a handler reads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from securetf._http.limits import BodyTimeoutError, BodyTooLargeError
from securetf.errors import Error, NotFoundError, UsageError
from securetf.serve.metadata import metadata_json, status_json
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository, ServedModel
from securetf.serve.rest_codec import encode_response, parse_predict

log = logging.getLogger(__name__)

__all__ = ["create_app", "error_response"]

#: Bodies up to this size are decoded on the event loop; larger ones in a worker thread.
_INLINE_BODY_BYTES = 64 * 1024


def _status(exc: Error) -> int:
    if isinstance(exc, BodyTooLargeError):
        return 413
    if isinstance(exc, BodyTimeoutError):
        return 408
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UsageError):
        return 400
    return 500


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def error_response(exc: Error) -> Response:
    return _error(str(exc), _status(exc))


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):  # str.isdigit alone takes "²", int() not
        raise UsageError(f"version must be a positive integer, not {text[:40]!r}")
    return int(text)


def _decode_and_submit(served: ServedModel, body: bytes) -> tuple[Any, bool]:
    req = parse_predict(body, served.model.signature)
    return served.batcher.submit(req.inputs), req.row_format


def create_app(repo: ModelRepository, metrics: ServeMetrics) -> FastAPI:
    """The REST application for one repository."""
    app = FastAPI(title="securetf serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Error)
    async def _on_error(request: Request, exc: Error) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(str(exc.detail), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error("malformed request", 400)

    async def predict(request: Request, name: str, version: str | None) -> Response:
        start = time.perf_counter()
        code = "200"
        try:
            served = repo.get(name, _version(version))
            with served.batcher.admit():
                body = await request.body()
                if len(body) <= _INLINE_BODY_BYTES:
                    future, rows = _decode_and_submit(served, body)
                else:
                    future, rows = await run_in_threadpool(_decode_and_submit, served, body)
                outputs = await asyncio.wrap_future(future)
            sig = served.model.signature
            return Response(
                encode_response(outputs, sig, row_format=rows), media_type="application/json"
            )
        except Error as exc:
            code = str(_status(exc))
            return error_response(exc)
        finally:
            metrics.observe("rest", "predict", name, code, time.perf_counter() - start)

    @app.post("/v1/models/{name}:predict")
    async def predict_latest(request: Request, name: str) -> Response:
        return await predict(request, name, None)

    @app.post("/v1/models/{name}/versions/{version}:predict")
    async def predict_version(request: Request, name: str, version: str) -> Response:
        return await predict(request, name, version)

    @app.get("/v1/models/{name}")
    async def status_all(name: str) -> Response:
        return _json(status_json(repo.versions(name)))

    @app.get("/v1/models/{name}/versions/{version}")
    async def status_one(name: str, version: str) -> Response:
        return _json(status_json([repo.get(name, _version(version))]))

    @app.get("/v1/models/{name}/metadata")
    async def metadata_latest(name: str) -> Response:
        return _json(metadata_json(repo.get(name)))

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def metadata_version(name: str, version: str) -> Response:
        return _json(metadata_json(repo.get(name, _version(version))))

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    return app

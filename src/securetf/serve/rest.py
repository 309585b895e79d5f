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
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from securetf._http.limits import BodyTimeoutError, BodyTooLargeError
from securetf.errors import Error, NotFoundError, UsageError
from securetf.serve._rest_inference import encode_result, submit_examples
from securetf.serve.metadata import metadata_json, status_json
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository, ServedModel
from securetf.serve.rest_codec import PredictRequest, encode_response, parse_predict
from securetf.serve.signature import CLASSIFY, PREDICT, REGRESS

log = logging.getLogger(__name__)

__all__ = ["create_app", "error_response"]

_METHODS = {PREDICT: "predict", CLASSIFY: "classify", REGRESS: "regress"}
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


def _decode_and_submit(served: ServedModel, body: bytes) -> tuple[Any, PredictRequest]:
    req = parse_predict(body, served.model)
    return served.batcher.submit(req.inputs, req.signature), req


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

    async def call(request: Request, name: str, version: str | None, method: str) -> Response:
        """One predict, classify or regress request: decode, batch, encode."""
        start = time.perf_counter()
        code = "200"
        try:
            served = repo.get(name, _version(version))
            with served.batcher.admit():
                body = await request.body()
                inline = len(body) <= _INLINE_BODY_BYTES
                if method == PREDICT:
                    decode: Any = partial(_decode_and_submit, served, body)
                else:
                    decode = partial(submit_examples, served, body, method)
                future, parsed = decode() if inline else await run_in_threadpool(decode)
                outputs = await asyncio.wrap_future(future)
            if method == PREDICT:
                sig = served.model.signatures[parsed.signature]
                answer = encode_response(outputs, sig, row_format=parsed.row_format)
            else:
                answer = encode_result(outputs, parsed, method)
            return Response(answer, media_type="application/json")
        except Error as exc:
            code = str(_status(exc))
            return error_response(exc)
        finally:
            metrics.observe("rest", _METHODS[method], name, code, time.perf_counter() - start)

    def routes(verb: str, method: str) -> None:
        # A closure per method: a default argument would be a query parameter to FastAPI.
        async def latest(request: Request, name: str) -> Response:
            return await call(request, name, None, method)

        async def pinned(request: Request, name: str, version: str) -> Response:
            return await call(request, name, version, method)

        app.add_api_route(f"/v1/models/{{name}}:{verb}", latest, methods=["POST"])
        app.add_api_route(
            f"/v1/models/{{name}}/versions/{{version}}:{verb}", pinned, methods=["POST"]
        )

    for method, verb in _METHODS.items():
        routes(verb, method)

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

"""The CAS's HTTP API, version 1: thin handlers over :class:`securetf.cas.core.Cas`.

Every error is a JSON body ``{"error": message, "type": class name, "exit_code": n}``
with a status that says whose fault it was (docs/cas.md lists them); the OpenAPI
document declares, for each operation, every status it answers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from securetf._http.limits import BodyTimeoutError, BodyTooLargeError
from securetf.cas._log_api import log_router
from securetf.cas._log_entries import IDENTITY_REF, policy_ref
from securetf.cas._policies import import_digests, parse
from securetf.cas._records import PendingUpdate, PolicyVersion
from securetf.cas.core import Cas
from securetf.cas.identity import CasIdentity, evidence_vcek
from securetf.cas.translog import CasLog, Witnessing
from securetf.errors import (
    AttestationError,
    AuthenticationError,
    Error,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from securetf.policy import SignedRequest
from securetf.protocol import (
    ApplyResult,
    AuditPage,
    CasIdentityDoc,
    InstanceStatus,
    NonceResponse,
    PolicyApply,
    PolicyApprove,
    PolicyDoc,
    PolicyHistory,
    ProvisionRequest,
    ProvisionResponse,
    ServiceLaunch,
    TagUpdate,
)
from securetf.protocol.logkey import vkey_endorsement, witnesses_endorsement
from securetf.protocol.messages import HistoryItem, RegisteredTag

_STATUS: list[tuple[type[Error], int]] = [
    (NotFoundError, 404),
    (BodyTooLargeError, 413),
    (BodyTimeoutError, 408),
    (UsageError, 400),
    (AuthenticationError, 403),
    (AttestationError, 403),
    (IntegrityError, 409),
]


_log = logging.getLogger(__name__)


def status_of(exc: Error) -> int:
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)


def error_response(
    exc: Error, *, status: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": str(exc), "type": type(exc).__name__, "exit_code": exc.exit_code}
    return JSONResponse(body, status_code=status or status_of(exc), headers=headers)


class ErrorBody(BaseModel):
    """Every error answer: what went wrong and what to do, its class, the CLI's exit code."""

    error: str
    type: str
    exit_code: int


_MEANING = {
    400: "Malformed request: not JSON, a missing field, a value out of range or invalid.",
    403: "Authentication or attestation refused.",
    404: "No such policy, service, secret or pending update.",
    408: "The request body arrived too slowly.",
    409: "A volume tag conflict or rollback (the state moved on), an audit log or stored "
    "state that fails authentication (the database was changed outside the CAS).",
    413: "The request body is too large.",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of an operation that can fail with ``statuses``; any request
    can carry a body, so any can be too slow (408) or too large (413)."""
    return {
        code: {"model": ErrorBody, "description": _MEANING[code]}
        for code in sorted({*statuses, 408, 413})
    }


def _validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    # The location can hold the client's own keys: only their start is repeated back.
    where = ".".join(str(part) for part in first.get("loc", ()))[:200]
    return (
        f"malformed request: {where}: {str(first.get('msg', 'invalid'))[:200]} "
        "(the CAS API is described in docs/cas-openapi.json)"
    )


class _Api(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        spec = super().openapi()
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for operations in spec["paths"].values():
            for operation in operations.values():
                # Validation errors are answered 400 in the error shape, not FastAPI's 422.
                operation["responses"].pop("422", None)
                # Errors are JSON even where success is not (FastAPI gives them the
                # operation's media type: text/plain for /metrics).
                for status, response in operation["responses"].items():
                    if status.startswith("4"):
                        response["content"] = error
        schemas = spec.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return spec


def _approved_by(approvals: tuple[bytes, ...], owners: dict[str, str]) -> list[str]:
    names = []
    for raw in approvals:
        signer = SignedRequest.from_json(raw).signer
        names.append(owners.get(signer, signer[:24]))
    return sorted(names)


def create_app(cas: Cas, identity: CasIdentity) -> FastAPI:
    app = _Api(title="securetf CAS", version="1", docs_url=None, redoc_url=None)
    registry = CollectorRegistry()
    requests = Counter(
        "securetf_cas_requests", "HTTP requests", ["route", "status"], registry=registry
    )
    latency = Histogram(
        "securetf_cas_latency_seconds", "request latency", ["route"], registry=registry
    )

    @app.exception_handler(Error)
    async def _error(_: Request, exc: Error) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(UsageError(_validation_message(exc)))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers (unknown path, wrong method, unreadable body), reshaped.
        error = NotFoundError if exc.status_code == 404 else UsageError
        return error_response(error(str(exc.detail)), status=exc.status_code, headers=exc.headers)

    # Body size and time limits are the server's (securetf._http.BodyGuard): they apply
    # while the body streams in, before this app reads it.
    app.add_middleware(_Metrics, requests=requests, latency=latency)

    # Built on first use: the OpenAPI document is made without a CAS.
    @functools.cache
    def witnessing() -> Witnessing:
        settings = cas.settings
        return Witnessing(
            Witnessing.parse(settings.log_witnesses, settings.log_witness_threshold),
            settings.log_witness_threshold,
            cas.log_cosign,
            cas.log_cosignatures,
            cas.log_witnessed,
            cas.log_counted,
        )

    log = functools.cache(lambda: CasLog(cas.log_tree(), identity.log_signer, witnessing()))
    app.include_router(log_router(log, _errors))

    # async: answered on the event loop, without a hop to the thread pool.
    @app.get("/healthz", responses=_errors())
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse, responses=_errors())
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # Without a VCEK the document is what it was before ``vcek`` existed (no null field),
    # which clients that refuse unknown fields still read.
    @app.get("/v1/identity", responses=_errors(400), response_model_exclude_none=True)
    def get_identity(nonce: str) -> CasIdentityDoc:
        try:
            raw = base64.urlsafe_b64decode(nonce.encode() + b"==")
        except (binascii.Error, ValueError):
            raise UsageError("the nonce must be base64url text") from None
        if not 16 <= len(raw) <= 64:
            raise UsageError("the nonce must be 16 to 64 bytes (base64url)")
        evidence = identity.evidence(raw)
        witnesses = [w.vkey() for w in witnessing().witnesses]
        threshold = witnessing().threshold
        return CasIdentityDoc(
            tee=evidence.tee,
            evidence=evidence.data,
            certificate_pem=identity.certificate_pem.decode(),
            audit_public_key=identity.audit_key.verify_key().to_text(),
            measurement="sha256:" + identity.measurement.hex(),
            vcek=evidence_vcek(evidence),
            log_vkey=log().vkey,
            log_vkey_signature=vkey_endorsement(identity.audit_key, log().vkey),
            log_index=cas.log_ref(IDENTITY_REF),
            log_witnesses=witnesses or None,
            log_witness_threshold=threshold or None,
            log_witnesses_signature=witnesses_endorsement(
                identity.audit_key, log().vkey, witnesses, threshold
            )
            if witnesses
            else None,
        )

    @app.post("/v1/policies", responses=_errors(400, 409))
    def apply_policy(body: PolicyApply) -> ApplyResult:
        signatures = [SignedRequest.from_json(s) for s in body.signatures]
        return cas.apply_policy(body.policy_yaml, signatures, body.secrets)

    @app.post("/v1/policies/{name}/approve", responses=_errors(400, 404, 409))
    def approve_policy(name: str, body: PolicyApprove) -> ApplyResult:
        return cas.approve_policy(name, SignedRequest.from_json(body.signature))

    @app.get("/v1/policies", responses=_errors(409))
    def list_policies() -> dict[str, list[str]]:
        return {"policies": cas.policy_names()}

    def _doc(stored: PolicyVersion, ca_pem: bytes, *, with_yaml: bool) -> PolicyDoc:
        return PolicyDoc(
            name=stored.name,
            version=stored.version,
            hash=stored.hash,
            policy_yaml=stored.yaml if with_yaml else None,
            ca_certificate_pem=ca_pem.decode(),
            created_at=stored.created_at,
            log_index=cas.log_ref(policy_ref(stored.name, stored.version)),
        )

    def _history(
        name: str, versions: list[PolicyVersion], pending: PendingUpdate | None, *, full: bool
    ) -> PolicyHistory:
        owners = {o.public_key: o.name for v in versions for o in parse(v.yaml).governance.owners}

        def item(v: PolicyVersion | PendingUpdate, imports: dict[str, str]) -> HistoryItem:
            return HistoryItem(
                version=v.version,
                hash=v.hash,
                created_at=v.created_at,
                approved_by=_approved_by(v.approvals, owners) if full else [],
                imports=imports,
            )

        return PolicyHistory(
            name=name,
            versions=[item(v, {}) for v in versions],
            # The digests of the uploaded values are for owners to sign, not for anyone to
            # guess a weak value against.
            pending=item(pending, import_digests(dict(pending.secrets)) if full else {})
            if pending
            else None,
        )

    @app.get("/v1/policies/{name}", responses=_errors(404, 409))
    def get_policy(name: str) -> PolicyDoc:
        stored, ca_pem = cas.policy(name)
        return _doc(stored, ca_pem, with_yaml=False)

    @app.post("/v1/policies/{name}/show", responses=_errors(400, 404, 409))
    def show_policy(name: str, signed: Annotated[dict[str, Any], Body()]) -> PolicyDoc:
        stored, ca_pem = cas.show_policy(name, _signed(signed))
        return _doc(stored, ca_pem, with_yaml=True)

    @app.get("/v1/policies/{name}/services/{service}", responses=_errors(404, 409))
    def get_launch(name: str, service: str) -> ServiceLaunch:
        return cas.launch(name, service)

    @app.get("/v1/policies/{name}/history", responses=_errors(404, 409))
    def get_history(name: str) -> PolicyHistory:
        versions, pending = cas.history(name)
        return _history(name, versions, pending, full=False)

    @app.post("/v1/policies/{name}/history", responses=_errors(400, 404, 409))
    def owner_history(name: str, signed: Annotated[dict[str, Any], Body()]) -> PolicyHistory:
        versions, pending = cas.history(name, _signed(signed))
        return _history(name, versions, pending, full=True)

    @app.get("/v1/policies/{name}/instances/{serial}", responses=_errors(400, 404, 409))
    def instance_status(name: str, serial: Annotated[int, Path(ge=1, lt=2**63)]) -> InstanceStatus:
        return cas.instance_status(name, serial)

    # A nonce is a MAC, no database work: async, on the event loop.
    @app.post("/v1/nonce", response_model=NonceResponse, responses=_errors())
    async def nonce() -> Response:
        return _json(cas.nonce())

    @app.post(
        "/v1/provision", response_model=ProvisionResponse, responses=_errors(400, 403, 404, 409)
    )
    def provision(
        body: ProvisionRequest,
        request: Request,
        log_from: Annotated[int | None, Query(ge=0, lt=2**63)] = None,
    ) -> Response:
        """The certificate and sealed configuration for attested evidence. With
        ``log_from`` (the size of the client's kept checkpoint), the answer carries its log
        entries' proofs (``log_bundle``), so the client proves it in this one round trip."""
        answer = cas.provision(body, _source(request))
        if log_from is not None:
            wanted = (answer.log_index, answer.policy_log_index)
            try:
                bundle = log().bundle(wanted, log_from)
            except Error as exc:
                # The decision is committed: answer it, and let the client prove it the
                # usual way (which names the log's fault to it) rather than fail it here.
                _log.warning("no log proofs sent with a provisioning answer: %s", exc)
                bundle = None
            answer = answer.model_copy(update={"log_bundle": bundle})
        return _json(answer)

    @app.post("/v1/tags", status_code=204, responses=_errors(400, 403, 404, 409))
    def update_tag(body: TagUpdate, request: Request) -> Response:
        cas.update_tag(body, _source(request))
        return Response(status_code=204)

    @app.post("/v1/policies/{name}/volumes/{volume}/tag", responses=_errors(400, 404, 409))
    def register_tag(
        name: str, volume: str, signed: Annotated[dict[str, Any], Body()], request: Request
    ) -> RegisteredTag:
        return cas.register_tag(name, volume, _signed(signed), _source(request))

    @app.post("/v1/policies/{name}/secrets/{secret}", responses=_errors(400, 404, 409))
    def export_secret(
        name: str, secret: str, signed: Annotated[dict[str, Any], Body()]
    ) -> dict[str, str]:
        value = cas.export_secret(name, secret, _signed(signed))
        return {"value": base64.b64encode(value).decode()}

    @app.post("/v1/policies/{name}/audit", responses=_errors(400, 404, 409))
    def audit(
        name: str,
        signed: Annotated[dict[str, Any], Body()],
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    ) -> AuditPage:
        return cas.audit(name, _signed(signed), after)

    return app


class _Metrics:
    """Counts requests and times them by route: plain ASGI, as Starlette's ``BaseHTTPMiddleware``
    (``@app.middleware``) runs each request through a task group and memory streams, which
    cost more CPU than the nonce request itself (docs/cas.md, "Throughput")."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self._app, self._requests, self._latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers if the app raises before responding

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self._latency.labels(name).observe(time.perf_counter() - start)
            self._requests.labels(name, str(status)).inc()


def _json(model: BaseModel) -> Response:
    """``model`` as the response, serialized once by pydantic: FastAPI would validate and
    serialize a returned model again (the operation's ``response_model`` documents it)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _source(request: Request) -> str | None:
    """The caller's address, which the CAS's refusal limits count by."""
    return request.client.host if request.client else None


def _signed(body: dict[str, Any]) -> SignedRequest:
    return SignedRequest.from_json(json.dumps(body).encode())

"""The CAS client: HTTPS to a pinned CAS only, errors turned back into securetf errors."""

from __future__ import annotations

import base64
import json
import ssl
import time
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from securetf import errors
from securetf.client.audit import AuditReader, AuditTrail
from securetf.client.audit_heads import keep_head, kept_head
from securetf.client.pins import CasPin, load_pin
from securetf.client.rotation import follow_rotation, is_certificate_mismatch
from securetf.crypto import SigningKey, VerifyKey
from securetf.errors import Error, UsageError
from securetf.policy import (
    Action,
    Policy,
    SignedRequest,
    import_digest,
    policy_hash,
    sign_request,
)
from securetf.protocol import (
    ApplyResult,
    AuditPage,
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
from securetf.protocol.messages import RegisteredTag

M = TypeVar("M", bound=BaseModel)
TIMEOUT = 30.0


_BY_EXIT_CODE: dict[int, type[Error]] = {
    errors.UsageError.exit_code: errors.UsageError,
    errors.IntegrityError.exit_code: errors.RollbackError,  # IntegrityError's text is fixed
    errors.AuthenticationError.exit_code: errors.AuthenticationError,
    errors.AttestationError.exit_code: errors.AttestationError,
}
#: Errors whose class the caller acts on, by the name the CAS sends (with their exit code).
_BY_TYPE: dict[str, type[Error]] = {"MeasurementError": errors.MeasurementError}


def _error_from(response: httpx.Response) -> Error:
    """The CAS's error as the same family of securetf error (same exit code, same text)."""
    try:
        body = response.json()
        message = str(body["error"])
        code = int(body.get("exit_code", 1))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Error(f"the CAS answered {response.status_code}: {response.text[:200]}")
    if response.status_code == 404:
        return errors.NotFoundError(message)
    named = _BY_TYPE.get(str(body.get("type", "")))
    if named is not None and named.exit_code == code:
        return named(message)
    return _BY_EXIT_CODE.get(code, Error)(message)


class CasClient:
    """Talks to one CAS whose certificate was pinned by ``securetf cas attest``."""

    def __init__(self, pin: CasPin, *, timeout: float = TIMEOUT) -> None:
        self._timeout = timeout
        self.pin = pin
        self._http = self._connect(pin)

    def _connect(self, pin: CasPin) -> httpx.Client:
        ctx = ssl.create_default_context(cadata=pin.certificate_pem)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return httpx.Client(base_url=pin.url, verify=ctx, timeout=self._timeout)

    @classmethod
    def for_url(cls, url: str) -> CasClient:
        return cls(load_pin(url))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            try:
                response = self._http.request(method, path, json=body)
            except httpx.ConnectError as exc:
                if not is_certificate_mismatch(exc):
                    raise
                # Another certificate than the pinned one: a rotation, if the pinned key
                # endorsed it and the CAS attests it (else this raises).
                self._http.close()
                self.pin = follow_rotation(self.pin, now=int(time.time()))
                self._http = self._connect(self.pin)
                response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach the CAS at {self.pin.url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _model(self, model: type[M], method: str, path: str, body: Any = None) -> M:
        return model.model_validate_json(self._call(method, path, body).content)

    # -- owners ------------------------------------------------------------------------
    def apply_policy(
        self, yaml: bytes, key: SigningKey, secrets: dict[str, bytes] | None = None
    ) -> ApplyResult:
        policy = Policy.from_yaml(yaml)
        signed = sign_request(
            key,
            action="create" if policy.version == 1 else "update",
            policy=policy.name,
            version=policy.version,
            policy_hash=policy_hash(policy),
            issued_at=int(time.time()),
            imports={name: import_digest(value) for name, value in (secrets or {}).items()},
        )
        body = PolicyApply(policy_yaml=yaml, signatures=[signed.to_json()], secrets=secrets or {})
        return self._model(ApplyResult, "POST", "/v1/policies", body.model_dump(mode="json"))

    def approve_policy(self, name: str, version: int, key: SigningKey) -> ApplyResult:
        history = self.history(name, key)  # an owner's view: the imported values' digests
        if history.pending is None or history.pending.version != version:
            raise UsageError(f"policy {name!r} has no pending version {version} to approve")
        signed = sign_request(
            key,
            action="approve",
            policy=name,
            version=version,
            policy_hash=history.pending.hash,
            issued_at=int(time.time()),
            imports=history.pending.imports,
        )
        body = PolicyApprove(signature=signed.to_json())
        return self._model(
            ApplyResult, "POST", f"/v1/policies/{name}/approve", body.model_dump(mode="json")
        )

    def policy_names(self) -> list[str]:
        names = self._call("GET", "/v1/policies").json()["policies"]
        return [str(n) for n in names]

    def owned_policies(self, key: SigningKey) -> list[str]:
        """The policies in force that list ``key`` among their owners (each asked with a
        signed ``show``: a policy's owners are not public)."""
        owned = []
        for name in self.policy_names():
            try:
                self.show_policy(name, key)
            except errors.UsageError as exc:  # the CAS's GovernanceError
                if "not an owner" in str(exc):
                    continue
                raise
            owned.append(name)
        return owned

    def policy(self, name: str) -> PolicyDoc:
        """The public part of the version in force: name, version, hash, CA certificate."""
        return self._model(PolicyDoc, "GET", f"/v1/policies/{name}")

    def show_policy(self, name: str, key: SigningKey) -> PolicyDoc:
        """The version in force with its YAML (``key`` must be an owner's)."""
        return self._model(
            PolicyDoc, "POST", f"/v1/policies/{name}/show", self._owner_request(name, key, "show")
        )

    def launch(self, name: str, service: str) -> ServiceLaunch:
        """What an operator needs to start ``service``: its command and code volume."""
        return self._model(ServiceLaunch, "GET", f"/v1/policies/{name}/services/{service}")

    def history(self, name: str, key: SigningKey | None = None) -> PolicyHistory:
        """Every version and any pending update; who approved each only for an owner's ``key``."""
        if key is None:
            return self._model(PolicyHistory, "GET", f"/v1/policies/{name}/history")
        body = self._owner_request(name, key, "history")
        return self._model(PolicyHistory, "POST", f"/v1/policies/{name}/history", body)

    def _owner_request(
        self,
        name: str,
        key: SigningKey,
        action: Action,
        target: str = "",
        detail: dict[str, str | int] | None = None,
    ) -> dict[str, Any]:
        """An owner's signed request for exactly one operation on the version in force."""
        doc = self.policy(name)
        signed: SignedRequest = sign_request(
            key,
            action=action,
            policy=name,
            version=doc.version,
            policy_hash=doc.hash,
            issued_at=int(time.time()),
            target=target,
            detail=detail,
        )
        parsed: dict[str, Any] = json.loads(signed.to_json())
        return parsed

    def export_secret(self, policy: str, secret: str, key: SigningKey) -> bytes:
        body = self._owner_request(policy, key, "export", secret)
        value = self._call("POST", f"/v1/policies/{policy}/secrets/{secret}", body).json()["value"]
        return base64.b64decode(value)

    def register_tag(
        self, policy: str, volume: str, *, tag: str, version: int, key: SigningKey
    ) -> RegisteredTag:
        """Record ``tag`` (at ``version``) as the state of ``volume`` (an owner's request)."""
        body = self._owner_request(
            policy, key, "register", volume, {"tag": tag, "version": version}
        )
        return self._model(
            RegisteredTag, "POST", f"/v1/policies/{policy}/volumes/{volume}/tag", body
        )

    def audit_page(self, policy: str, key: SigningKey, *, after: int = 0) -> AuditPage:
        """One page of the log after seq ``after``, unverified: use :meth:`audit`."""
        return self._model(
            AuditPage,
            "POST",
            f"/v1/policies/{policy}/audit?after={after}",
            self._owner_request(policy, key, "audit"),
        )

    def audit(self, policy: str, key: SigningKey) -> AuditTrail:
        """The whole log up to its head, verified against the pinned audit key and against
        the head this client kept from its last read, which then moves to the new head."""
        reader = AuditReader(
            VerifyKey.from_text(self.pin.audit_public_key),
            policy=policy,
            kept=kept_head(self.pin.url, policy),
        )
        while not reader.done:
            reader.add_page(self.audit_page(policy, key, after=reader.after))
        trail = reader.trail()
        keep_head(self.pin.url, policy, trail.head)
        return trail

    # -- runtimes ----------------------------------------------------------------------
    def nonce(self) -> NonceResponse:
        return self._model(NonceResponse, "POST", "/v1/nonce")

    def provision(self, req: ProvisionRequest) -> ProvisionResponse:
        return self._model(ProvisionResponse, "POST", "/v1/provision", req.model_dump(mode="json"))

    def instance_status(self, policy: str, serial: int) -> InstanceStatus:
        """Whether the certificate with ``serial`` still speaks for a live instance."""
        return self._model(InstanceStatus, "GET", f"/v1/policies/{policy}/instances/{serial}")

    def update_tag(self, req: TagUpdate) -> None:
        self._call("POST", "/v1/tags", req.model_dump(mode="json"))

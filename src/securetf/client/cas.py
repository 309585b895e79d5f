"""The CAS client: HTTPS to a pinned CAS only, errors turned back into securetf errors."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from securetf import errors
from securetf._logutil import warn_loudly
from securetf.client._httpx import httpx
from securetf.client.caslog import CasLogClient
from securetf.client.pins import CasPin, load_pin
from securetf.crypto import Certificate, SigningKey, VerifyKey, sha256
from securetf.errors import Error, UsageError
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

if TYPE_CHECKING:
    from securetf.client.audit import AuditTrail
    from securetf.policy import Action

# What only owners use (the policy model, signed requests, the audit trail) and what only a
# rotated certificate needs is imported where it is used: 'securetf run' starts without it.

M = TypeVar("M", bound=BaseModel)
TIMEOUT = 30.0

_log = logging.getLogger(__name__)


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


def cas_urls(urls: str) -> list[str]:
    """The CAS URLs of ``urls``: one URL, or several separated by commas (replicas)."""
    found = [u.strip() for u in urls.split(",") if u.strip()]
    if not found:
        raise UsageError("no CAS URL given: pass one, or several separated by commas")
    return found


class CasClient:
    """Talks to a CAS whose certificate was pinned by ``securetf cas attest``; given the pins
    of several replicas, it fails over from one to the next when one cannot be reached.

    Every answer a decision rests on (the policy in force, a provisioning's certificate,
    an instance's status) is proven to be in the CAS's transparency log, in a checkpoint
    consistent with the one this home kept (:mod:`securetf.client.caslog`): a CAS whose
    database was put back to an older copy, or that shows this client another history
    than before, is refused. ``log_source`` reads the log from a static mirror instead.
    Replicas share one log; it is read through the first CAS's pin.
    """

    def __init__(
        self,
        pin: CasPin | Sequence[CasPin],
        *,
        timeout: float = TIMEOUT,
        home: Path | None = None,
        log_source: str | None = None,
    ) -> None:
        pins = [pin] if isinstance(pin, CasPin) else list(pin)
        if not pins:
            raise UsageError("a CAS client needs the pin of at least one CAS")
        self.pins = pins
        #: The first CAS: whose URL keeps the audit heads (replicas share one audit log).
        self.pin = pins[0]
        self._timeout = timeout
        self._clients: dict[int, httpx.Client] = {}
        self._current = 0  # the replica that answered last: asked first next time
        self._home, self._log_source = home, log_source
        self._log: CasLogClient | None = None
        if self.pin.log_vkey is not None:
            self._log = CasLogClient(
                self.pin, home=home, timeout=timeout, source=log_source, replicas=self.pins
            )

    @classmethod
    def for_url(cls, url: str, *, log_source: str | None = None) -> CasClient:
        """The client of the CAS at ``url``, or of the replicas at ``url1,url2,...``."""
        return cls([load_pin(u) for u in cas_urls(url)], log_source=log_source)

    def sibling(self, *, timeout: float = TIMEOUT) -> CasClient:
        """Another client of the same CAS, home and log source (for another thread)."""
        return CasClient(self.pins, timeout=timeout, home=self._home, log_source=self._log_source)

    def _client(self, index: int) -> httpx.Client:
        client = self._clients.get(index)
        if client is None:
            ctx = ssl.create_default_context(cadata=self.pins[index].certificate_pem)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            client = httpx.Client(base_url=self.pins[index].url, verify=ctx, timeout=self._timeout)
            self._clients[index] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._log is not None:
            self._log.close()

    # -- the transparency log ------------------------------------------------------------
    def _logged(self, what: str, index: int | None, expect: dict[str, object]) -> None:
        if self._log is None:
            warn_loudly(
                _log,
                "the pin of %s has no log key: CAS answers are NOT checked against its "
                "transparency log (attest the CAS again to pin it)",
                self.pin.url,
            )
            return
        self._log.require(what, index, expect)

    def prove_policy(self, doc: PolicyDoc) -> None:
        """Raise unless ``doc`` (the version in force) is in the log."""
        what = f"policy {doc.name!r} version {doc.version}"
        expect = {"type": "policy", "name": doc.name, "version": doc.version, "hash": doc.hash}
        self._logged(what, doc.log_index, expect)

    def prove_certificate(self, der: bytes, status: InstanceStatus) -> None:
        """Raise unless the certificate ``der``, which ``status`` describes, is in the log
        (as Certificate Transparency: clients talk only to nodes the public can audit)."""
        self._logged(
            f"the certificate serial {status.serial} of {status.service}-{status.instance}",
            status.log_index,
            {
                "type": "certificate",
                "serial": status.serial,
                "policy": status.policy,
                "service": status.service,
                "instance": status.instance,
                "certificate_sha256": sha256(der).hex(),
            },
        )

    def _prove_provisioned(self, req: ProvisionRequest, response: ProvisionResponse) -> None:
        der = Certificate.load(response.certificate_pem.encode()).der
        what = f"the certificate serial {response.serial} issued to {req.service}-{req.instance}"
        cert = {
            "type": "certificate",
            "serial": response.serial,
            "policy": req.policy,
            "service": req.service,
            "instance": req.instance,
            "certificate_sha256": sha256(der).hex(),
        }
        if self._log is None:
            self._logged(what, response.log_index, cert)  # warns
            return
        at = None
        if response.log_bundle is not None:
            at = self._log.adopt(response.log_bundle)
        entry = self._log.require(what, response.log_index, cert, at=at).decoded()
        # The version the certificate was issued under, as its proven entry records it.
        version = entry.get("policy_version")
        self._log.require(
            f"policy {req.policy!r} version {version}",
            response.policy_log_index,
            {"type": "policy", "name": req.policy, "version": version},
            at=self._log.last,  # the checkpoint just verified for the certificate
        )

    def __enter__(self) -> CasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request, to the replica that answered last, then to each other in turn while
        none answers. A request whose answer was lost may so reach a second replica: the
        CAS's own single-use checks (nonces, tag compare-and-swap, request ids) refuse it
        there if the first committed, so nothing is granted twice (docs/cas.md, "Replicas")."""
        failures: list[str] = []
        for step in range(len(self.pins)):
            index = (self._current + step) % len(self.pins)
            try:
                response = self._request(index, method, path, body)
            except httpx.TransportError as exc:
                failures.append(f"{self.pins[index].url}: {exc}")
                continue
            except httpx.HTTPError as exc:
                raise UsageError(f"cannot reach the CAS at {self.pins[index].url}: {exc}") from exc
            self._current = index
            if response.status_code >= 400:
                raise _error_from(response)
            return response
        raise UsageError(f"cannot reach the CAS at {'; '.join(failures)}")

    def _request(self, index: int, method: str, path: str, body: Any) -> httpx.Response:
        try:
            return self._client(index).request(method, path, json=body)
        except httpx.ConnectError as exc:
            from securetf.client.rotation import follow_rotation, is_certificate_mismatch

            if not is_certificate_mismatch(exc):
                raise
        # Another certificate than the pinned one: a rotation, if the pinned key endorsed
        # it and the CAS attests it (else this raises, and the pin stays).
        self._clients.pop(index).close()
        self.pins[index] = follow_rotation(self.pins[index], now=int(time.time()))
        if index == 0:
            self.pin = self.pins[0]
            if self._log is not None:
                self._log.close()
                self._log = CasLogClient(
                    self.pin,
                    home=self._home,
                    timeout=self._timeout,
                    source=self._log_source,
                    replicas=self.pins,
                )
        return self._client(index).request(method, path, json=body)

    def _model(self, model: type[M], method: str, path: str, body: Any = None) -> M:
        return model.model_validate_json(self._call(method, path, body).content)

    # -- owners ------------------------------------------------------------------------
    def apply_policy(
        self, yaml: bytes, key: SigningKey, secrets: dict[str, bytes] | None = None
    ) -> ApplyResult:
        from securetf.policy import Policy, import_digest, policy_hash, sign_request

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
        from securetf.policy import sign_request

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
        """The public part of the version in force: name, version, hash, CA certificate;
        proven to be in the log."""
        doc = self._model(PolicyDoc, "GET", f"/v1/policies/{name}")
        self.prove_policy(doc)
        return doc

    def show_policy(self, name: str, key: SigningKey) -> PolicyDoc:
        """The version in force with its YAML (``key`` must be an owner's); proven to be
        in the log, and the YAML to be the version the log records."""
        from securetf.policy import Policy, policy_hash

        doc = self._model(
            PolicyDoc, "POST", f"/v1/policies/{name}/show", self._owner_request(name, key, "show")
        )
        if doc.policy_yaml is None or policy_hash(Policy.from_yaml(doc.policy_yaml)) != doc.hash:
            raise errors.IntegrityError("the CAS's policy does not match its hash")
        self.prove_policy(doc)
        return doc

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
        from securetf.policy import sign_request

        doc = self.policy(name)
        signed = sign_request(
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
        from securetf.client.audit import AuditReader
        from securetf.client.audit_heads import keep_head, kept_head

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
        """The certificate and sealed configuration, the certificate and the policy version
        it was issued under proven to be in the log."""
        # The kept checkpoint's size asks the CAS to send the answer's log proofs with it.
        kept = self._log.kept_size() if self._log is not None else None
        query = f"?log_from={kept or 0}" if self._log is not None else ""
        body = req.model_dump(mode="json")
        response = self._model(ProvisionResponse, "POST", "/v1/provision" + query, body)
        self._prove_provisioned(req, response)
        return response

    def instance_status(self, policy: str, serial: int) -> InstanceStatus:
        """Whether the certificate with ``serial`` still speaks for a live instance."""
        return self._model(InstanceStatus, "GET", f"/v1/policies/{policy}/instances/{serial}")

    def update_tag(self, req: TagUpdate) -> None:
        self._call("POST", "/v1/tags", req.model_dump(mode="json"))

"""The CAS core: every decision of the Configuration and Attestation Service.

Thin HTTP handlers call one method each. Every method runs its checks and writes inside
store transactions, so a refused request changes nothing; refusals of evidence are still
audited, with their reason, in a transaction of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from securetf.cas import _owner, _policies, _provision, _registry
from securetf.cas._ca import trusted_bundle
from securetf.cas._cache import SecretCache
from securetf.cas._evidence import EvidenceVerifier
from securetf.cas._log_entries import tag_entry
from securetf.cas._nonces import NonceBook
from securetf.cas._records import PendingUpdate, PolicyVersion, VolumeTag
from securetf.cas._refusals import RefusalGate, excerpt, excerpt_detail
from securetf.cas._store_api import Store, TagConflict, Tx
from securetf.cas.settings import CasSettings
from securetf.cas.store import StateTamperedError
from securetf.crypto import VerifyKey
from securetf.crypto.x509ca import verify_ec_signature
from securetf.errors import AttestationError, AuthenticationError, Error, RollbackError
from securetf.log import LogTree
from securetf.policy import SignedRequest
from securetf.protocol import (
    ApplyResult,
    AuditPage,
    CodeLaunch,
    InstanceStatus,
    NonceResponse,
    ProvisionRequest,
    ProvisionResponse,
    ServiceLaunch,
    TagUpdate,
    tag_update_message,
)
from securetf.protocol.messages import RegisteredTag

_log = logging.getLogger(__name__)
T = TypeVar("T")


class Cas:
    """The service's logic over a store, a clock and the verifiers' trust anchors."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        sim_trust: Collection[VerifyKey] = (),
        settings: CasSettings | None = None,
        evidence: EvidenceVerifier | None = None,
    ) -> None:
        """``evidence``: the verifier's anchors and collateral source; without it, sim
        evidence signed by ``sim_trust`` and hardware evidence that brings its collateral."""
        self._store = store
        self._clock = clock
        self._evidence = evidence or EvidenceVerifier(sim_trust=frozenset(sim_trust))
        self.settings = settings or CasSettings()
        self._cache = SecretCache()
        self._nonces = NonceBook(ttl=self.settings.nonce_ttl_seconds, clock=clock)
        self._refusals = RefusalGate(
            per_source=self.settings.audit_refusals_per_source,
            window=self.settings.audit_refusal_window_seconds,
            max_sources=self.settings.audit_refusal_sources,
            clock=clock,
        )

    def log_identity(self, entry: bytes) -> int | None:
        """Log the CAS's identity at start if it is not the one logged last (a rotation)."""
        return self._store.run(lambda tx: tx.log_identity(entry))

    def log_tree(self) -> LogTree:
        """The transparency log (read side; entries are appended by the decisions)."""
        return self._store.log_reader()

    # -- policies ----------------------------------------------------------------------
    def apply_policy(
        self, yaml: bytes, signatures: Sequence[SignedRequest], secrets: Mapping[str, bytes]
    ) -> ApplyResult:
        now = self._clock()
        return self._run(
            "policy.apply",
            lambda tx: _policies.apply(
                tx, yaml, signatures, secrets, settings=self.settings, now=now
            ),
        )

    def approve_policy(self, name: str, signed: SignedRequest) -> ApplyResult:
        now = self._clock()
        return self._run(
            "policy.approve",
            lambda tx: _policies.approve(tx, name, signed, settings=self.settings, now=now),
        )

    def policy(self, name: str) -> tuple[PolicyVersion, bytes]:
        """The version in force and its CA certificate (PEM). Its YAML is for owners
        (:meth:`show_policy`) and attested instances only: callers show the public part."""

        now = self._clock()
        return self._run("policy.read", lambda tx: _in_force(tx, name, now))

    def show_policy(self, name: str, signed: SignedRequest) -> tuple[PolicyVersion, bytes]:
        """The version in force with its YAML, for an owner's signed ``show`` request."""
        now = self._clock()

        def read(tx: Tx) -> tuple[PolicyVersion, bytes]:
            _owner.authorize(tx, name, signed, action="show", now=now)
            return _in_force(tx, name, now)

        return self._run("policy.show", read)

    def launch(self, name: str, service: str) -> ServiceLaunch:
        """The public part of a service: its command and code volume (for operators)."""

        def read(tx: Tx) -> ServiceLaunch:
            stored, policy = _policies.load(tx, name)
            spec = _provision.service_of(policy, service, 0)
            code = spec.code
            return ServiceLaunch(
                policy=name,
                version=stored.version,
                service=service,
                command=list(spec.command),
                code=CodeLaunch(volume=code.volume, path=str(code.path)) if code else None,
                path=spec.path,
                env_image=spec.env_image,
            )

        return self._run("policy.launch", read)

    def policy_names(self) -> list[str]:
        return self._run("policy.list", lambda tx: tx.policy_names())

    def history(
        self, name: str, signed: SignedRequest | None = None
    ) -> tuple[list[PolicyVersion], PendingUpdate | None]:
        """Every version and the pending update. Who approved them is for owners: the
        caller shows approvals only when ``signed`` (an owner's ``history`` request) is given
        and verifies."""
        now = self._clock()

        def read(tx: Tx) -> tuple[list[PolicyVersion], PendingUpdate | None]:
            if signed is not None:
                _owner.authorize(tx, name, signed, action="history", now=now)
            versions = tx.policy_history(name)
            if not versions:
                _policies.load(tx, name)  # raises the not-found error
            return versions, tx.pending_update(name)

        return self._run("policy.history", read)

    # -- provisioning ------------------------------------------------------------------
    def nonce(self) -> NonceResponse:
        nonce, expires = self._nonces.issue()
        return NonceResponse(nonce=nonce, expires_at=expires)

    def provision(self, req: ProvisionRequest, source: str | None = None) -> ProvisionResponse:
        """``source``: the caller's address, which bounds how many of its refusals are
        audited (see :mod:`securetf.cas._refusals`)."""
        now = self._clock()
        try:
            # 1. The nonce: single use, even when a later step fails.
            #    (Taken before anything else: a request refused later still used it up.)
            if not self._nonces.take(req.nonce):
                raise AttestationError(
                    "the nonce is unknown, used or expired; ask the CAS for a fresh one "
                    "(replayed or stale evidence is refused)"
                )
            stored, _ = self._run("provision", lambda tx: _policies.load(tx, req.policy))
            # 2-4. Policy, evidence, appraisal (CPU work, outside any transaction).
            verified = _provision.verify(stored, req, now=now, evidence=self._evidence)

            # 5. Secrets, certificate, record.
            def grant(tx: Tx) -> ProvisionResponse:
                if tx.version_in_force(req.policy) != stored.version:
                    raise AttestationError("the policy changed during provisioning; retry")
                return _provision.grant(
                    tx, verified, req, settings=self.settings, now=now, cache=self._cache
                )

            return self._run("provision", grant)
        except StateTamperedError:
            raise  # audited as such by _run
        except Error as exc:
            self._refused(
                "provision.refused",
                req.policy,
                exc,
                source,
                service=req.service,
                instance=req.instance,
                tee=req.tee,
            )
            raise

    # -- volume tags -------------------------------------------------------------------
    def update_tag(self, req: TagUpdate, source: str | None = None) -> None:
        """Move a volume's tag, if an attested read-write instance asks and nothing changed."""
        now = self._clock()
        try:
            self._run("tag.move", lambda tx: self._move_tag(tx, req, now))
        except StateTamperedError:
            raise  # audited as such by _run
        except Error as exc:
            self._refused(
                "tag.refused", req.policy, exc, source, volume=req.volume, serial=req.serial
            )
            raise

    def _move_tag(self, tx: Tx, req: TagUpdate, now: float) -> None:
        instance = tx.get_instance(req.serial)
        if instance is None or instance.policy != req.policy:
            raise AuthenticationError(f"no attested instance {req.serial} of {req.policy!r}")
        if instance.expires_at < now:
            raise AuthenticationError("the instance's certificate expired; run it again")
        message = tag_update_message(
            policy=req.policy,
            volume=req.volume,
            serial=req.serial,
            expected=req.expected,
            tag=req.tag,
            version=req.version,
        )
        verify_ec_signature(instance.public_key_der, req.signature, message)
        _, policy = _policies.load(tx, req.policy)
        revoked = _provision.still_allowed(instance, policy)
        if revoked is not None:
            raise AuthenticationError(
                f"instance {req.serial} was revoked by a policy update ({revoked}); "
                "run it again under the version in force"
            )
        service = policy.services.get(instance.service)
        if service is None or not any(
            m.volume == req.volume and m.mode == "rw" for m in service.mounts
        ):
            raise AuthenticationError(
                f"service {instance.service!r} does not mount volume {req.volume!r} "
                "read-write, so it cannot move its tag"
            )
        current = tx.get_tag(req.policy, req.volume)
        if current is not None and req.version <= current.version:
            raise RollbackError(
                f"volume {req.volume!r} is at version {current.version}; "
                f"version {req.version} would move it backwards"
            )
        try:
            tx.swap_tag(req.expected, VolumeTag(req.policy, req.volume, req.tag, req.version, now))
        except TagConflict as conflict:
            have = conflict.current.tag if conflict.current else None
            raise RollbackError(
                f"volume {req.volume!r} is now at {have}, not {req.expected}: another "
                "instance committed first; this state is not recorded"
            ) from None
        tx.append_log(
            tag_entry(
                policy=req.policy,
                volume=req.volume,
                previous=req.expected,
                tag=req.tag,
                version=req.version,
                by="instance",
            )
        )
        tx.append_audit(
            "tag.moved",
            req.policy,
            {
                "volume": req.volume,
                "from": req.expected,
                "to": req.tag,
                "version": req.version,
                "serial": req.serial,
            },
            now,
        )

    def instance_status(self, policy: str, serial: int) -> InstanceStatus:
        """Whether the certificate with ``serial`` still speaks for a live instance of
        ``policy``: not superseded, not expired, and allowed by the version in force.
        Peers and serving clients ask this before trusting a certificate."""
        now = self._clock()

        def read(tx: Tx) -> InstanceStatus:
            instance = tx.get_instance(serial)
            if instance is None or instance.policy != policy:
                return InstanceStatus(
                    policy=policy, serial=serial, live=False, reason="unknown or superseded"
                )
            stored, current = _policies.load(tx, policy)
            reason = _provision.still_allowed(instance, current)
            if reason is None and instance.expires_at <= now:
                reason = "its certificate expired"
            return InstanceStatus(
                policy=policy,
                serial=serial,
                live=reason is None,
                reason=reason or "",
                service=instance.service,
                instance=instance.instance,
                policy_version=stored.version,
                expires_at=instance.expires_at,
            )

        return self._run("instance.status", read)

    def register_tag(
        self, policy: str, volume: str, signed: SignedRequest, source: str | None = None
    ) -> RegisteredTag:
        """Record the state an owner gave a volume (docs/cas.md, "Registering a volume's state")."""
        now = self._clock()
        try:
            return self._run(
                "tag.register", lambda tx: _registry.register(tx, policy, volume, signed, now=now)
            )
        except StateTamperedError:
            raise  # audited as such by _run
        except Error as exc:
            self._refused("tag.refused", policy, exc, source, volume=volume)
            raise

    # -- owners ------------------------------------------------------------------------
    def export_secret(self, policy: str, secret: str, signed: SignedRequest) -> bytes:
        now = self._clock()

        def export(tx: Tx) -> bytes:
            approval = _owner.authorize(tx, policy, signed, action="export", target=secret, now=now)
            return _owner.export_secret(tx, policy, secret, approval.owner, now=now)

        return self._run("secret.export", export)

    def audit(self, policy: str, signed: SignedRequest, after: int = 0) -> AuditPage:
        """One page of the log after seq ``after``, with the head it reaches towards."""
        now = self._clock()

        def read(tx: Tx) -> AuditPage:
            _owner.authorize(tx, policy, signed, action="audit", now=now)
            return _owner.audit_page(tx, policy, after=after, size=self.settings.audit_page)

        return self._run("audit.read", read)

    # -- internals ---------------------------------------------------------------------
    def _run(self, operation: str, fn: Callable[[Tx], T]) -> T:
        """``fn`` in a store transaction; a tampered state is logged and audited, loudly."""
        try:
            return self._store.run(fn)
        except StateTamperedError as exc:
            _log.error("REFUSED %s: %s", operation, exc.diagnostics())
            try:
                with self._store.transaction() as tx:
                    # The row's names come from the database: only excerpts of them.
                    limit = self.settings.audit_detail_chars
                    tx.append_audit(
                        "state.tampered",
                        None if exc.policy is None else excerpt(exc.policy, limit),
                        excerpt_detail({"operation": operation, "detail": exc.detail}, limit),
                        self._clock(),
                    )
            except Error:
                _log.exception("could not audit a tampered state")
            raise

    def _refused(
        self, kind: str, policy: str, exc: Error, source: str | None, **detail: Any
    ) -> None:
        """Audit a refusal in its own transaction (the refused one rolled back): what the
        caller sent only as a short excerpt, and only a few refusals per source and window."""
        limit = self.settings.audit_detail_chars
        where = "unknown" if source is None else excerpt(source, limit)
        clean = excerpt_detail({**detail, "reason": str(exc), "source": where}, limit)
        counts = self._refusals.admit(where)
        if counts is None:
            _log.debug("%s from %s counted, not audited", kind, where)
            return
        _log.warning("%s from %s: %s", kind, where, clean["reason"])
        try:
            with self._store.transaction() as tx:
                known = tx.current_policy(policy) is not None
                tx.append_audit(kind, policy if known else None, {**clean, **counts}, self._clock())
        except Error:
            _log.exception("could not audit a refusal")


def _in_force(tx: Tx, name: str, now: float) -> tuple[PolicyVersion, bytes]:
    """The version in force and the CA certificates to trust (PEM: the current CA, then
    the retired ones still in their overlap)."""
    stored, _ = _policies.load(tx, name)
    ca = tx.get_ca(name)
    return stored, trusted_bundle(ca.cert_pem, now) if ca else b""


__all__ = ["Cas"]

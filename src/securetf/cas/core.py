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
from securetf.cas._log_entries import certificate_ref, tag_entry
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
        self._nonces = NonceBook(
            store.nonce_key(), ttl=self.settings.nonce_ttl_seconds, clock=clock
        )
        self._next_purge = 0.0  # when this process next forgets expired spent nonces
        self._refusals = RefusalGate(
            per_source=self.settings.audit_refusals_per_source,
            window=self.settings.audit_refusal_window_seconds,
            max_sources=self.settings.audit_refusal_sources,
            clock=clock,
        )

    def log_identity(self, entry: bytes) -> int | None:
        """Log the CAS's identity at start if it is not the one logged last (a rotation)."""
        return self._store.run(lambda tx: tx.log_identity(entry))

    def log_ref(self, ref: str) -> int | None:
        """Where the entry under ``ref`` (:func:`securetf.cas._log_entries.policy_ref`,
        ...) is in the log, for answers that clients prove."""
        return self._run("log.read", lambda tx: tx.log_ref(ref))

    def log_cosign(self, witness: str, size: int, root: bytes, line: bytes) -> bool:
        """Keep a witness's cosignature line (verified by the caller); see
        :class:`securetf.cas.translog.CasLog`."""
        return self._run("log.cosign", lambda tx: tx.log_cosign(witness, size, root, line))

    def log_cosignatures(self) -> list[tuple[str, int, bytes, bytes]]:
        return self._run("log.read", lambda tx: tx.log_cosignatures())

    def log_witnessed(self, size: int, root: bytes, lines: bytes) -> None:
        self._run("log.cosign", lambda tx: tx.log_witnessed(size, root, lines))

    def log_counted(self) -> tuple[int, bytes, bytes] | None:
        return self._run("log.read", lambda tx: tx.log_counted())

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
        return self._run("policy.read", lambda tx: _in_force(tx, name, now), writes=False)

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

        return self._run("policy.launch", read, writes=False)

    def policy_names(self) -> list[str]:
        return self._run("policy.list", lambda tx: tx.policy_names(), writes=False)

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
        expires: float | None = None
        try:
            # 1. The nonce: one this CAS (or a replica) issued, unexpired, not used up by a
            #    refusal here. Whether a grant spent it is decided below, in the database.
            expires = self._nonces.expiry(req.nonce)
            if expires is None:
                raise AttestationError(NONCE_REFUSED)
            stored, _ = self._run(
                "provision", lambda tx: _policies.load(tx, req.policy), writes=False
            )
            # 2-4. Policy, evidence, appraisal (CPU work, outside any transaction).
            verified = _provision.verify(stored, req, now=now, evidence=self._evidence)
            spent = expires

            # 5. Secrets, certificate, record: committed with the nonce spent, or not at all.
            def grant(tx: Tx) -> ProvisionResponse:
                if not tx.spend_nonce(req.nonce, spent):
                    raise AttestationError(NONCE_REFUSED)
                if tx.version_in_force(req.policy) != stored.version:
                    raise AttestationError("the policy changed during provisioning; retry")
                if now >= self._next_purge:
                    # Spent nonces are kept until they have expired by every replica's
                    # clock (a TTL of slack), then forgotten: their MAC no longer passes.
                    tx.purge_nonces(now - 2 * self.settings.nonce_ttl_seconds)
                return _provision.grant(
                    tx, verified, req, settings=self.settings, now=now, cache=self._cache
                )

            response = self._run("provision", grant)
            if now >= self._next_purge:
                self._next_purge = now + self.settings.nonce_ttl_seconds
            return response
        except StateTamperedError:
            raise  # audited as such by _run
        except Error as exc:
            if expires is not None:
                self._nonces.refused(req.nonce, expires)  # a refused request used it up
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
                transparency=policy.transparency,
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
                log_index=tx.log_ref(certificate_ref(policy, serial)),
            )

        return self._run("instance.status", read, writes=False)

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
    def _run(self, operation: str, fn: Callable[[Tx], T], *, writes: bool = True) -> T:
        """``fn`` in a store transaction; a tampered state is logged and audited, loudly.
        ``writes=False``: ``fn`` only reads (see ``Store.run``)."""
        try:
            return self._store.run(fn, writes=writes)
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
        now = self._clock()
        window = int(now // self.settings.audit_refusal_window_seconds)
        per_source = self.settings.audit_refusals_per_source
        try:
            with self._store.transaction() as tx:
                # This process's gate admitted it; the limit is the replicas' together.
                if not tx.admit_refusal(where, window, per_source):
                    self._refusals.give_back(where, counts)
                    return
                known = tx.current_policy(policy) is not None
                tx.append_audit(kind, policy if known else None, {**clean, **counts}, now)
        except Error:
            _log.exception("could not audit a refusal")


NONCE_REFUSED = (
    "the nonce is unknown, used or expired; ask the CAS for a fresh one "
    "(replayed or stale evidence is refused)"
)


def _in_force(tx: Tx, name: str, now: float) -> tuple[PolicyVersion, bytes]:
    """The version in force and the CA certificates to trust (PEM: the current CA, then
    the retired ones still in their overlap)."""
    stored, _ = _policies.load(tx, name)
    ca = tx.get_ca(name)
    return stored, trusted_bundle(ca.cert_pem, now) if ca else b""


__all__ = ["Cas"]

"""The CAS core: every decision of the Configuration and Attestation Service.

Thin HTTP handlers call one method each. Every method runs its checks and writes inside
store transactions, so a refused request changes nothing; refusals of evidence are still
audited, with their reason, in a transaction of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from securetf.cas import _owner, _policies, _provision, _registry
from securetf.cas._cache import SecretCache
from securetf.cas._nonces import NonceBook
from securetf.cas._records import AuditEntry, PendingUpdate, PolicyVersion, VolumeTag
from securetf.cas._store_api import Store, TagConflict, Tx
from securetf.cas.settings import CasSettings
from securetf.crypto import VerifyKey
from securetf.crypto.x509ca import verify_ec_signature
from securetf.errors import AttestationError, AuthenticationError, Error, RollbackError
from securetf.policy import SignedRequest, limits
from securetf.protocol import (
    ApplyResult,
    NonceResponse,
    ProvisionRequest,
    ProvisionResponse,
    TagUpdate,
    tag_update_message,
)
from securetf.protocol.messages import RegisteredTag

_log = logging.getLogger(__name__)


class Cas:
    """The service's logic over a store, a clock and the verifiers' trust anchors."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        sim_trust: Collection[VerifyKey] = (),
        settings: CasSettings | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sim_trust = frozenset(sim_trust)
        self.settings = settings or CasSettings()
        self._cache = SecretCache()
        self._nonces = NonceBook(ttl=self.settings.nonce_ttl_seconds, clock=clock)

    # -- policies ----------------------------------------------------------------------
    def apply_policy(
        self, yaml: bytes, signatures: Sequence[SignedRequest], secrets: Mapping[str, bytes]
    ) -> ApplyResult:
        now = self._clock()
        return self._store.run(
            lambda tx: _policies.apply(
                tx, yaml, signatures, secrets, settings=self.settings, now=now
            )
        )

    def approve_policy(self, name: str, signed: SignedRequest) -> ApplyResult:
        now = self._clock()
        return self._store.run(
            lambda tx: _policies.approve(tx, name, signed, settings=self.settings, now=now)
        )

    def policy(self, name: str) -> tuple[PolicyVersion, bytes]:
        """The version in force and its CA certificate (PEM)."""

        def read(tx: Tx) -> tuple[PolicyVersion, bytes]:
            stored, _ = _policies.load(tx, name)
            ca = tx.get_ca(name)
            return stored, ca.cert_pem if ca else b""

        return self._store.run(read)

    def policy_names(self) -> list[str]:
        return self._store.run(lambda tx: tx.policy_names())

    def history(self, name: str) -> tuple[list[PolicyVersion], PendingUpdate | None]:

        def read(tx: Tx) -> tuple[list[PolicyVersion], PendingUpdate | None]:
            versions = tx.policy_history(name)
            if not versions:
                _policies.load(tx, name)  # raises the not-found error
            return versions, tx.pending_update(name)

        return self._store.run(read)

    # -- provisioning ------------------------------------------------------------------
    def nonce(self) -> NonceResponse:
        nonce, expires = self._nonces.issue()
        return NonceResponse(nonce=nonce, expires_at=expires)

    def provision(self, req: ProvisionRequest) -> ProvisionResponse:
        now = self._clock()
        try:
            # 1. The nonce: single use, even when a later step fails.
            #    (Taken before anything else: a request refused later still used it up.)
            if not self._nonces.take(req.nonce):
                raise AttestationError(
                    "the nonce is unknown, used or expired; ask the CAS for a fresh one "
                    "(replayed or stale evidence is refused)"
                )
            stored, _ = self._store.run(lambda tx: _policies.load(tx, req.policy))
            # 2-4. Policy, evidence, appraisal (CPU work, outside any transaction).
            verified = _provision.verify(stored, req, now=now, sim_trust=self._sim_trust)

            # 5. Secrets, certificate, record.
            def grant(tx: Tx) -> ProvisionResponse:
                current = tx.current_policy(req.policy)
                if current is None or current.hash != stored.hash:
                    raise AttestationError("the policy changed during provisioning; retry")
                return _provision.grant(
                    tx, verified, req, settings=self.settings, now=now, cache=self._cache
                )

            return self._store.run(grant)
        except Error as exc:
            self._refused(
                "provision.refused",
                req.policy,
                exc,
                service=req.service,
                instance=req.instance,
                tee=req.tee,
            )
            raise

    # -- volume tags -------------------------------------------------------------------
    def update_tag(self, req: TagUpdate) -> None:
        """Move a volume's tag, if an attested read-write instance asks and nothing changed."""
        now = self._clock()
        try:
            self._store.run(lambda tx: self._move_tag(tx, req, now))
        except Error as exc:
            self._refused("tag.refused", req.policy, exc, volume=req.volume, serial=req.serial)
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

    def register_tag(self, policy: str, volume: str, signed: SignedRequest) -> RegisteredTag:
        """Record the state an owner gave a volume (docs/cas.md, "Registering a volume's state")."""
        now = self._clock()
        try:
            return self._store.run(
                lambda tx: _registry.register(tx, policy, volume, signed, now=now)
            )
        except Error as exc:
            # The name is the caller's (the URL's): kept no longer than a policy's names.
            self._refused("tag.refused", policy, exc, volume=volume[: limits.MAX_NAME_LENGTH])
            raise

    # -- owners ------------------------------------------------------------------------
    def export_secret(self, policy: str, secret: str, signed: SignedRequest) -> bytes:
        now = self._clock()

        def export(tx: Tx) -> bytes:
            approval = _owner.authorize(tx, policy, signed, action="export", target=secret, now=now)
            return _owner.export_secret(tx, policy, secret, approval.owner, now=now)

        return self._store.run(export)

    def audit(self, policy: str, signed: SignedRequest) -> list[dict[str, Any]]:
        now = self._clock()

        def read(tx: Tx) -> list[AuditEntry]:
            _owner.authorize(tx, policy, signed, action="audit", now=now)
            return tx.audit_entries(0, self.settings.audit_page)

        entries = self._store.run(read)
        return _owner.audit_view(entries, policy)

    # -- internals ---------------------------------------------------------------------
    def _refused(self, kind: str, policy: str, exc: Error, **detail: Any) -> None:
        """Audit a refusal in its own transaction (the refused one rolled back)."""
        _log.warning("%s for policy %s: %s", kind, policy, exc)
        try:
            with self._store.transaction() as tx:
                known = tx.current_policy(policy) is not None
                tx.append_audit(
                    kind, policy if known else None, {**detail, "reason": str(exc)}, self._clock()
                )
        except Error:
            _log.exception("could not audit a refusal")


__all__ = ["Cas"]

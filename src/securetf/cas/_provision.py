"""Provisioning: verify a runtime's evidence against its policy, then hand out its secrets.

Steps (each failure raises, and the core audits the refusal with its reason):

1. The nonce is one the CAS issued, unused and unexpired (taken before anything else).
2. The policy and the service exist; the instance number is within ``instances``.
3. The evidence verifies for its TEE (signature chain, collateral, freshness).
4. Appraisal: TEE allowed, TCB tolerated, not debug, the image one of the policy's
   reference values for its TEE (sim: the measurement expected), and the report data binds
   exactly this nonce, the runtime's two fresh public keys and one of the service's
   measurements (the runtime inside the measured image vouches for the app it measured).
5. Issue a certificate for the runtime's TLS key and seal the service's configuration
   (environment, files, volume keys and tags) to the runtime's box key.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass

from securetf.attestation import Claims, appraise
from securetf.attestation.appraisal import measurement_name
from securetf.attestation.rtmr import APP_EVENT, APP_RTMR, read_event_log
from securetf.cas._ca import trusted_bundle
from securetf.cas._cache import SecretCache
from securetf.cas._evidence import EvidenceVerifier
from securetf.cas._log_entries import certificate_entry, certificate_ref, policy_ref
from securetf.cas._policies import load, parse
from securetf.cas._records import Instance, PolicyVersion
from securetf.cas._store_api import Tx
from securetf.cas.settings import CasSettings
from securetf.crypto import constant_time_equal
from securetf.crypto.sealed_box import seal_to
from securetf.crypto.x509ca import EcKey, issue_certificate
from securetf.errors import AttestationError, MeasurementError, NotFoundError, UsageError
from securetf.policy import (
    Policy,
    RandomSecret,
    Service,
    X509Secret,
    render,
    render_bytes,
    template_references,
)
from securetf.protocol import (
    CONFIG_INFO,
    ProvisionRequest,
    ProvisionResponse,
    ServiceConfig,
    VolumeGrant,
    provision_report_data,
)
from securetf.protocol.messages import NetworkGrant, PeerService


@dataclass(frozen=True)
class Verified:
    """What steps 1-4 established."""

    stored: PolicyVersion
    policy: Policy
    service: Service
    claims: Claims
    measurement: bytes
    """The app's measurement, one of the service's, that the evidence binds."""


def service_of(policy: Policy, name: str, instance: int) -> Service:
    service = policy.services.get(name)
    if service is None:
        raise NotFoundError(
            f"policy {policy.name!r} has no service {name!r} "
            f"(services: {', '.join(sorted(policy.services))})"
        )
    if instance >= service.instances:
        raise AttestationError(
            f"service {name!r} has {service.instances} instance(s); instance {instance} "
            "is not one of them"
        )
    return service


def expected_measurements(service: Service) -> list[bytes]:
    return [bytes.fromhex(m.split(":", 1)[1]) for m in service.measurement]


def still_allowed(instance: Instance, policy: Policy) -> str | None:
    """Why the version in force no longer allows an instance provisioned earlier, or None.

    An instance keeps its rights only while the policy in force still names its service and
    slot, its TEE and its measurement: an update that drops any of them revokes it.
    """
    service = policy.services.get(instance.service)
    if service is None:
        return f"version {policy.version} has no service {instance.service!r}"
    if instance.instance >= service.instances:
        return f"version {policy.version} has no instance {instance.instance} of it"
    if instance.tee not in policy.tee.allow:
        return f"version {policy.version} no longer allows TEE {instance.tee}"
    if instance.measurement not in expected_measurements(service):
        return f"version {policy.version} no longer allows its measurement"
    return None


def verify(
    stored: PolicyVersion,
    req: ProvisionRequest,
    *,
    now: float,
    evidence: EvidenceVerifier,
) -> Verified:
    """Steps 2-4 (the caller took the nonce in step 1).

    A refusal for the app names only the caller's own measurement, never the service's:
    the caller learns that its code is not listed, not what is.
    """
    policy = parse(stored.yaml)
    service = service_of(policy, req.service, req.instance)
    if req.tee not in policy.tee.allow:
        raise AttestationError(
            f"policy {policy.name!r} does not allow TEE {req.tee} (tee.allow: "
            f"{', '.join(policy.tee.allow)}): run on one of those (securetf run --tee), or "
            "an owner adds it to tee.allow and applies the policy again"
        )
    claims = evidence.provision(req, now=int(now))
    listed = expected_measurements(service)
    app = _bound_app(claims, listed, req)
    try:
        appraise(
            claims,
            allowed_tees=policy.tee.allow,
            # sim reports the app as its measurement: the bound one, or when none is
            # bound one of the listed, so that an unlisted app is what a refusal names.
            expected_measurements=[app] if app is not None else listed,
            # Bound to none of them: the TEE, platform and image are appraised first (a
            # refusal names the first thing wrong), then the app is refused below.
            expected_report_data=_binding(req, app) if app is not None else claims.report_data,
            tolerate=policy.tee.tolerate,
            ignore_advisories=policy.tee.ignore_advisories,
            references=policy.tee,
            rtmr3_events=_rtmr3_events(req, app),
        )
    except MeasurementError:
        if app is not None:  # sim evidence of one app binding another: not an honest runtime
            raise AttestationError(
                f"the sim evidence reports {measurement_name(claims)}, not the app its "
                "report data binds"
            ) from None
        raise MeasurementError(
            f"the app measurement {measurement_name(claims)} is not one that service "
            f"{req.service!r} of policy {policy.name!r} allows"
        ) from None
    if app is None:
        if claims.tee == "sim":  # its measurement is listed: the nonce or keys are not these
            raise AttestationError(REPORT_DATA_MISMATCH)
        # Hardware evidence carries the app only inside the binding. The nonce is fresh and
        # the keys are the request's, so for an honest runtime the app is what differs.
        raise MeasurementError(
            f"the evidence binds no app measurement that service {req.service!r} of policy "
            f"{policy.name!r} allows: the app the runtime measured is not listed (or the "
            "evidence was made for another nonce or other keys)"
        )
    return Verified(stored, policy, service, claims, app)


#: Evidence of a listed app that binds another nonce or other keys than the request's.
REPORT_DATA_MISMATCH = (
    "report data does not match the expected binding of nonce, keys and app measurement "
    "(stale or replayed evidence, evidence made for another session, or for an app the "
    "policy does not name)"
)


def _binding(req: ProvisionRequest, measurement: bytes) -> bytes:
    return provision_report_data(req.nonce, req.tls_public_key, req.box_public_key, measurement)


def _bound_app(claims: Claims, listed: list[bytes], req: ProvisionRequest) -> bytes | None:
    """The listed measurement whose binding the report data is, or None."""
    for measurement in listed:
        if constant_time_equal(claims.report_data, _binding(req, measurement)):
            return measurement
    return None


def _rtmr3_events(req: ProvisionRequest, app: bytes | None) -> list[bytes]:
    """The digests the runtime extended RTMR3 with (TDX), its last event this app's.

    The log only explains the register: appraisal replays it from the policy's boot value
    and compares the result with the quote's RTMR3, so a forged or shortened log fails.
    With no listed app bound, the app is refused after appraisal, whatever the log says.
    """
    if req.rtmr_events is None:
        return []
    if req.tee != "tdx":
        raise AttestationError(f"an RTMR event log comes with tdx evidence, not {req.tee}")
    events = read_event_log(req.rtmr_events)
    apps = [e for e in events if e.rtmr == APP_RTMR and e.event == APP_EVENT]
    if app is not None and (not apps or apps[-1].measurement != "sha256:" + app.hex()):
        raise AttestationError(
            f"the runtime's last RTMR3 event is not the app its evidence names (sha256:{app.hex()})"
        )
    return [e.digest for e in events if e.rtmr == APP_RTMR]


def _secret_values(
    tx: Tx, cache: SecretCache, policy: Policy, ca_key: EcKey, ca_pem: bytes, *, now: float
) -> dict[str, bytes | str]:
    """Every value a template of this policy may name (x509 secrets are issued fresh)."""
    values: dict[str, bytes | str] = {}
    for name, secret in policy.secrets.items():
        if isinstance(secret, X509Secret):
            key = EcKey.generate()
            values[f"secrets.{name}.cert"] = issue_certificate(
                ca_key,
                ca_pem,
                key.public_der(),
                common_name=secret.common_name,
                organization=policy.name,
                alt_names=[secret.common_name],
                server="server" in secret.usage,
                client="client" in secret.usage,
                serial=tx.next_serial(),
                now=now,
                valid_seconds=secret.valid_days * 86400.0,
            )
            values[f"secrets.{name}.key"] = key.to_pem()
            values[f"secrets.{name}.ca"] = ca_pem
            continue
        raw = cache.secret(tx, policy.name, policy.version, name)
        if isinstance(secret, RandomSecret) and secret.encoding == "hex":
            values[f"secrets.{name}"] = raw.hex()
        elif isinstance(secret, RandomSecret) and secret.encoding == "base64":
            values[f"secrets.{name}"] = base64.b64encode(raw).decode()
        else:
            values[f"secrets.{name}"] = raw
    return values


def grant(
    tx: Tx,
    v: Verified,
    req: ProvisionRequest,
    *,
    settings: CasSettings,
    now: float,
    cache: SecretCache,
) -> ProvisionResponse:
    """Step 5: certificate, sealed configuration, and the instance's record."""
    policy, service = v.policy, v.service
    ca_key, ca_pem = cache.ca(tx, policy.name, policy.version)
    ca_pem = trusted_bundle(ca_pem, now)  # the current CA first: it issues
    serial = tx.next_serial()
    name = f"{req.service}-{req.instance}"
    cert = issue_certificate(
        ca_key,
        ca_pem,
        req.tls_public_key,
        common_name=name,
        organization=policy.name,
        alt_names=[f"{name}.{policy.name}", f"{req.service}.{policy.name}"],
        server=True,
        client=True,
        serial=serial,
        now=now,
        valid_seconds=settings.instance_cert_seconds,
    )
    values = _secret_values(tx, cache, policy, ca_key, ca_pem, now=now)
    volumes: dict[str, VolumeGrant] = {}
    placed = [(m.volume, m.path, m.mode, False) for m in service.mounts]
    if service.code is not None:
        placed.append((service.code.volume, service.code.path, "ro", True))
    for volume_name, path, mode, code in placed:
        volume = policy.volumes[volume_name]
        tag = tx.get_tag(policy.name, volume_name)
        volumes[volume_name] = VolumeGrant(
            key=cache.secret(tx, policy.name, policy.version, volume.key),
            tag=tag.tag if tag else None,
            version=tag.version if tag else 0,
            rollback=volume.rollback,
            path=path,
            mode=mode,
            code=code,
        )
    config = ServiceConfig(
        policy=policy.name,
        policy_version=policy.version,
        service=req.service,
        instance=req.instance,
        command=list(service.command),
        environment={k: render(t, values) for k, t in service.environment.items()},
        files={path: render_bytes(t, values) for path, t in service.files.items()},
        volumes=volumes,
        network=_network(policy, req.service),
        path=service.path,
        tmpfs=service.tmpfs.model_dump(),
        user=service.user.model_dump(),
        env_image=service.env_image,
        output=service.output if isinstance(service.output, str) else service.output.model_dump(),
    )
    if len(req.box_public_key) != 32:
        raise UsageError("box_public_key must be a 32-byte X25519 public key")
    sealed = seal_to(req.box_public_key, config.model_dump_json().encode(), info=CONFIG_INFO)
    superseded = tx.add_instance(
        Instance(
            serial,
            policy.name,
            policy.version,
            req.service,
            req.instance,
            req.tls_public_key,
            now + settings.instance_cert_seconds,
            now,
            v.claims.tee,
            v.measurement,
        )
    )
    log_index = tx.append_log(
        certificate_entry(
            serial=serial,
            policy=policy.name,
            policy_version=policy.version,
            service=req.service,
            instance=req.instance,
            tee=v.claims.tee,
            measurement=v.measurement,
            # The certificate just issued: its DER is the PEM's body (no parse needed).
            certificate_der=ssl.PEM_cert_to_DER_cert(cert.decode()),
            transparency=policy.transparency,
        ),
        certificate_ref(policy.name, serial),
    )
    tx.append_audit(
        "provision.accepted",
        policy.name,
        {
            "service": req.service,
            "instance": req.instance,
            "serial": serial,
            "tee": v.claims.tee,
            "measurement": v.measurement.hex(),
            "tcb_status": v.claims.tcb_status,
            "secrets_released": sorted({r.split(".")[1] for r in values} & _used_secrets(service))
            + sorted(policy.volumes[n].key for n in volumes),
            # The slot's previous certificates, which lose every right from now on.
            "superseded": sorted(superseded),
        },
        now,
    )
    return ProvisionResponse(
        certificate_pem=cert.decode(),
        ca_certificate_pem=ca_pem.decode(),
        serial=serial,
        sealed_config=sealed,
        log_index=log_index,
        policy_log_index=tx.log_ref(policy_ref(policy.name, policy.version)),
    )


def _network(policy: Policy, name: str) -> NetworkGrant:
    """The service's network section, and the size and ports of itself and its peers."""
    net = policy.services[name].network
    cluster = {
        s: PeerService(
            instances=policy.services[s].instances, listen=list(policy.services[s].network.listen)
        )
        for s in {name, *net.peers}
        if s in policy.services
    }
    return NetworkGrant(
        peers=list(net.peers),
        listen=list(net.listen),
        egress=list(net.egress),
        public=list(net.public),
        cluster=cluster,
    )


def _used_secrets(service: Service) -> set[str]:
    used: set[str] = set()
    for template in [*service.environment.values(), *service.files.values()]:
        used.update(r.secret for r in template_references(template))
    return used


__all__ = [
    "Verified",
    "expected_measurements",
    "grant",
    "load",
    "service_of",
    "still_allowed",
    "verify",
]

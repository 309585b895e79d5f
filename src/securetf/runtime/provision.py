"""Attest to the CAS and receive the service's configuration (docs/cas.md, "Provisioning")."""

from __future__ import annotations

from dataclasses import dataclass

from securetf.attestation import Producer
from securetf.attestation.snp_certs import vcek_from_cert_table
from securetf.client import CasClient
from securetf.crypto.sealed_box import BoxKey
from securetf.crypto.x509ca import EcKey
from securetf.protocol import (
    CONFIG_INFO,
    ProvisionRequest,
    ServiceConfig,
    TagUpdate,
    provision_report_data,
    tag_update_message,
)


@dataclass(frozen=True)
class Provisioned:
    """What an attested instance holds: its keys, its certificate, its configuration."""

    config: ServiceConfig
    tls_key: EcKey
    certificate_pem: str
    ca_certificate_pem: str
    serial: int


def provision(
    client: CasClient,
    producer: Producer,
    *,
    policy: str,
    service: str,
    instance: int,
    measurement: bytes,
    rtmr_events: list[str] | None = None,
) -> Provisioned:
    """1. fresh keys; 2. a nonce; 3. evidence binding both and the app's ``measurement``;
    4. the sealed configuration.

    The runtime is part of the measured image (enclave or confidential VM), so its
    statement of the app's measurement, bound into the hardware evidence, is what the CAS
    checks against the policy (docs/attestation.md, "The app's identity").
    """
    tls_key, box = EcKey.generate(), BoxKey()
    nonce = client.nonce().nonce
    report_data = provision_report_data(nonce, tls_key.public_der(), box.public(), measurement)
    evidence = producer.evidence(report_data)
    # SEV-SNP: the VCEK from the host's certificate table, when it has one (the CAS checks
    # that it chains to AMD's roots and was issued for this chip and TCB; without it the
    # CAS asks its KDS).
    vcek = vcek_from_cert_table(evidence.aux) if evidence.tee == "sev-snp" else None
    response = client.provision(
        ProvisionRequest(
            policy=policy,
            service=service,
            instance=instance,
            tee=evidence.tee,
            evidence=evidence.data,
            nonce=nonce,
            tls_public_key=tls_key.public_der(),
            box_public_key=box.public(),
            vcek=vcek,
            rtmr_events=rtmr_events,
        )
    )
    config = ServiceConfig.model_validate_json(box.open(response.sealed_config, info=CONFIG_INFO))
    return Provisioned(
        config, tls_key, response.certificate_pem, response.ca_certificate_pem, response.serial
    )


def move_tag(
    client: CasClient,
    inst: Provisioned,
    volume: str,
    *,
    expected: str | None,
    tag: str,
    version: int,
) -> None:
    """Record a committed volume state at the CAS (compare-and-swap from ``expected``)."""
    policy = inst.config.policy
    message = tag_update_message(
        policy=policy,
        volume=volume,
        serial=inst.serial,
        expected=expected,
        tag=tag,
        version=version,
    )
    client.update_tag(
        TagUpdate(
            policy=policy,
            volume=volume,
            serial=inst.serial,
            expected=expected,
            tag=tag,
            version=version,
            signature=inst.tls_key.sign(message),
        )
    )

"""The CAS's own identity: its TLS key and certificate, its audit key, its transparency
log's key, and evidence that binds the certificate and audit key to the code it runs (the
audit key endorses the log key: securetf.cas.translog).

The private keys are sealed under the master key, which is sealed to the TEE
(:mod:`securetf.cas._identity_keys`): a copy of the data directory holds none of them.
Clients pin the certificate only after verifying the evidence (``securetf cas attest``).

The evidence comes from the producer of the TEE the CAS was started on (``--tee``): the
sim token reports :func:`package_measurement`; SGX, TDX and SEV-SNP evidence reports the
image the TEE launched (MRENCLAVE, MRTD and RTMRs, the launch measurement), which clients
compare with reference values. On every TEE the report data binds the certificate, the
audit key and the client's nonce (:func:`securetf.protocol.cas_report_data`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import securetf
from securetf._logutil import warn_loudly
from securetf.attestation import Evidence, Producer
from securetf.attestation.snp_certs import vcek_from_cert_table
from securetf.cas._identity_keys import (
    IDENTITY_DIR,
    IDENTITY_KEYS,
    SEALED_SUFFIX,
    load_or_create_identity_key,
    read_identity_key,
    write_identity_key,
)
from securetf.cas.master_key import MasterKey
from securetf.cas.rotation import current_chain
from securetf.cas.translog import LOG_KEY_FILE
from securetf.crypto import Certificate, SigningKey
from securetf.crypto.x509ca import EcKey, self_signed
from securetf.errors import AttestationError
from securetf.log import Ed25519Signer
from securetf.protocol import cas_report_data
from securetf.protocol.logkey import log_origin
from securetf.protocol.rotation import ROTATION_OID, encode_chain

__all__ = [
    "IDENTITY_KEYS",
    "SEALED_SUFFIX",
    "CasIdentity",
    "evidence_vcek",
    "load_identity",
    "package_measurement",
    "read_identity_key",
    "write_identity_key",
]

CERT_VALID_DAYS = 365
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")

_log = logging.getLogger(__name__)


def package_measurement() -> bytes:
    """SHA-256 over the securetf package's Python files (path and content, sorted): the
    code identity the CAS's evidence reports."""
    root = Path(securetf.__file__).parent
    h = hashlib.sha256(b"securetf/v1 package\x00")
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.digest()


@dataclass(frozen=True)
class CasIdentity:
    tls_key: EcKey
    certificate_pem: bytes
    audit_key: SigningKey
    producer: Producer
    measurement: bytes
    #: Signs the transparency log's checkpoints (securetf.cas.translog).
    log_signer: Ed25519Signer

    def evidence(self, nonce: bytes) -> Evidence:
        """Fresh evidence binding the certificate, the audit key and the client's nonce."""
        der = Certificate.load(self.certificate_pem).der
        return self.producer.evidence(
            cas_report_data(der, self.audit_key.verify_key().raw(), nonce)
        )


def evidence_vcek(evidence: Evidence) -> bytes | None:
    """The VCEK the host attached to SEV-SNP ``evidence`` (its certificate table), if any.

    A malformed table is the host's doing: it is logged and left out, and clients then
    need the VCEK from AMD's KDS or an offline bundle.
    """
    if evidence.tee != "sev-snp" or not evidence.aux:
        return None
    try:
        return vcek_from_cert_table(evidence.aux)
    except AttestationError as exc:
        warn_loudly(_log, "ignoring the SEV-SNP certificate table the host attached: %s", exc)
        return None


def load_identity(
    data_dir: Path,
    producer: Producer,
    measurement: bytes,
    *,
    master: MasterKey,
    hosts: tuple[str, ...],
    now: float,
) -> CasIdentity:
    """Load the identity from ``data_dir/identity`` (its keys sealed under ``master``),
    creating it on first start."""
    ident = data_dir / IDENTITY_DIR
    ident.mkdir(mode=0o700, parents=True, exist_ok=True)

    def key(name: str, make: Callable[[], bytes]) -> bytes:
        return load_or_create_identity_key(data_dir, name, master, make)

    tls_key = EcKey.from_pem(
        key("tls.key", lambda: EcKey.generate().to_pem()), source=str(ident / "tls.key")
    )
    audit_key = SigningKey.from_pem(
        key("audit.key", lambda: SigningKey.generate().to_pem()), source=str(ident / "audit.key")
    )
    names = tuple(dict.fromkeys((*hosts, *DEFAULT_NAMES)))
    cert_path = ident / "tls.crt"
    names_path = ident / "tls.names"
    if (
        not cert_path.exists()
        or names_path.read_text().split() != list(names)
        or Certificate.load(cert_path.read_bytes()).public_key_der() != tls_key.public_der()
    ):
        # A new key (securetf cas rotate-key): the certificate carries the chain to it.
        chain = current_chain(ident, tls_key)
        extensions = [(ROTATION_OID, encode_chain(chain))] if chain else []
        cert = self_signed(
            tls_key,
            "securetf CAS",
            names,
            now=now,
            valid_days=CERT_VALID_DAYS,
            extensions=extensions,
        )
        tmp = cert_path.with_suffix(".tmp")
        tmp.write_bytes(cert)
        os.replace(tmp, cert_path)
        names_path.write_text(" ".join(names))
    log_key = SigningKey.from_pem(
        key(LOG_KEY_FILE, lambda: SigningKey.generate().to_pem()), source=str(ident / LOG_KEY_FILE)
    )
    log_signer = Ed25519Signer(log_origin(audit_key.verify_key()), log_key)
    return CasIdentity(
        tls_key, cert_path.read_bytes(), audit_key, producer, measurement, log_signer
    )

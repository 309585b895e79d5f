"""JSON bodies of the CAS's HTTP API, version 1. Bytes travel as base64 strings."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema

from securetf.policy.limits import MAX_INSTANCES


def _from_wire(value: object) -> bytes:
    """Bytes from Python stay bytes; text from JSON is strict base64."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
    raise ValueError("expected base64 text")


Base64Bytes = Annotated[
    bytes,
    PlainValidator(_from_wire),
    PlainSerializer(lambda b: base64.b64encode(b).decode(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


#: Serials and versions live in signed 64-bit database columns: a larger number is refused
#: here, at the API, rather than overflowing in the database.
PositiveInt64 = Annotated[int, Field(ge=1, le=2**63 - 1)]
#: An instance number is below its service's ``instances``, which the policy bounds.
InstanceNumber = Annotated[int, Field(ge=0, lt=MAX_INSTANCES)]


class _Msg(BaseModel):
    # Validators are built on first use (a runtime uses a handful of these messages).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class CasIdentityDoc(_Msg):
    """``GET /v1/identity``: the CAS's evidence binding its certificate and audit key.

    ``measurement`` is the SHA-256 of the CAS's securetf package; only ``sim`` evidence
    reports it (hardware evidence reports the image: MRENCLAVE, MRTD and RTMRs, the SNP
    launch measurement). ``vcek``: on SEV-SNP, the chip's VCEK (DER) from the certificate
    table the host attached to the report, when it attached one, so that clients need not
    ask AMD's KDS; it is verified like any VCEK, so a wrong one only fails verification.
    """

    tee: str
    evidence: Base64Bytes
    certificate_pem: str
    audit_public_key: str  # ed25519:...
    measurement: str  # sha256:<hex>
    vcek: Base64Bytes | None = None
    #: The transparency log's note key (C2SP vkey), and the audit key's signature that it
    #: is this CAS's (securetf.cas.translog.vkey_endorsement).
    log_vkey: str | None = None
    log_vkey_signature: Base64Bytes | None = None
    #: The index of the CAS's identity entry in its log (docs/log.md, "Clients verify").
    log_index: int | None = None
    #: The witnesses whose cosignatures a checkpoint needs (cosignature vkeys), how many,
    #: and the audit key's signature of both (securetf.protocol.logkey).
    log_witnesses: list[str] | None = None
    log_witness_threshold: int | None = None
    log_witnesses_signature: Base64Bytes | None = None


class PolicyApply(_Msg):
    """``POST /v1/policies``: the exact YAML, owners' signed requests, imported secrets."""

    policy_yaml: Base64Bytes
    signatures: list[Base64Bytes] = Field(max_length=64)  # SignedRequest.to_json()
    secrets: dict[str, Base64Bytes] = Field(default_factory=dict, max_length=256)


class PolicyApprove(_Msg):
    """``POST /v1/policies/{name}/approve``: one more owner's signature for a pending update."""

    signature: Base64Bytes


class ApplyResult(_Msg):
    name: str
    version: int
    hash: str
    status: Literal["active", "pending"]
    signatures: int
    needed: int


class PolicyDoc(_Msg):
    """``GET /v1/policies/{name}``: the version in force. Public: name, version, hash, CA.

    ``policy_yaml`` (owners' keys, measurements, file contents) only in the answer to an
    owner's signed ``show`` request (``POST /v1/policies/{name}/show``).
    """

    name: str
    version: int
    hash: str
    policy_yaml: Base64Bytes | None = None
    ca_certificate_pem: str
    created_at: float
    #: The index of this version's ``policy`` entry in the CAS's transparency log.
    log_index: int | None = None


class CodeLaunch(_Msg):
    volume: str
    path: str


class ServiceLaunch(_Msg):
    """``GET /v1/policies/{name}/services/{service}``: what an operator needs to launch a
    service (its command, which the runtime measures, and its code volume); public."""

    policy: str
    version: int
    service: str
    command: list[str]
    code: CodeLaunch | None = None
    path: str | None = None  # the program's PATH (None: the default): command[0] is found there
    env_image: str | None = None  # the environment image's measurement (sha256:...), if pinned


class HistoryItem(_Msg):
    version: int
    hash: str
    created_at: float
    approved_by: list[str]
    #: A pending update's imported secrets: name -> ``sha256:<hex>`` of the uploaded value,
    #: which an approval must sign (``securetf.policy.import_digest``); owners' view only.
    imports: dict[str, str] = {}


class PolicyHistory(_Msg):
    name: str
    versions: list[HistoryItem]
    pending: HistoryItem | None = None


class NonceResponse(_Msg):
    nonce: Base64Bytes
    expires_at: float


class ProvisionRequest(_Msg):
    """``POST /v1/provision``: evidence from a runtime that wants a service's secrets."""

    policy: str
    service: str
    instance: InstanceNumber = 0
    tee: str
    evidence: Base64Bytes
    nonce: Base64Bytes
    tls_public_key: Base64Bytes  # SubjectPublicKeyInfo DER, ECDSA P-256
    box_public_key: Base64Bytes  # X25519, 32 bytes
    collateral: str | None = None  # DCAP collateral JSON (SGX, TDX)
    vcek: Base64Bytes | None = None  # SEV-SNP chip certificate (DER)
    #: TDX: the event log of what the runtime extended RTMR3 with this boot (JSON lines,
    #: docs/attestation-rtmr.md), the last one this app; absent where the TD has no RTMRs.
    rtmr_events: (
        Annotated[list[Annotated[str, Field(max_length=512)]], Field(max_length=1024)] | None
    ) = None


class VolumeGrant(_Msg):
    key: Base64Bytes
    tag: str | None  # None: the CAS has no state of it yet
    version: int
    rollback: Literal["protected", "none"]
    path: str  # where the program sees it
    mode: Literal["ro", "rw"]
    code: bool = False  # the application itself ships in this volume


class PeerService(_Msg):
    """How many instances a service of the cluster has, and the ports they listen on."""

    instances: int
    listen: list[int]


class NetworkGrant(_Msg):
    """The service's ``network`` section, with the instance counts of the cluster."""

    peers: list[str] = Field(default_factory=list)
    listen: list[int] = Field(default_factory=list)
    egress: list[str] = Field(default_factory=list)
    public: list[int] = Field(default_factory=list)  # reached by anyone, in the program's TLS
    cluster: dict[str, PeerService] = Field(default_factory=dict)  # the service and its peers


class ServiceConfig(_Msg):
    """Sealed to the runtime's box key: everything secret about one service instance."""

    policy: str
    policy_version: int
    service: str
    instance: int
    command: list[str]
    environment: dict[str, str]
    files: dict[str, Base64Bytes]
    volumes: dict[str, VolumeGrant]
    network: NetworkGrant = Field(default_factory=NetworkGrant)
    path: str | None = None  # the program's PATH (None: the runtime's default)
    tmpfs: dict[str, str] = Field(default_factory=dict)  # the policy's Tmpfs sizes
    user: dict[str, int] = Field(default_factory=dict)  # the policy's User (uid, gid)
    env_image: str | None = None  # the environment image's measurement (sha256:...), if pinned
    #: The policy's ``output``: ``operator``, ``none`` or ``{"sealed": "VOLUME/PATH"}``.
    output: str | dict[str, str] = "operator"


class LogBundleEntry(_Msg):
    """One log entry an answer names, exact bytes, with its RFC 9162 inclusion proof in the
    bundle's checkpoint (hashes leaf side first)."""

    index: int
    data: Base64Bytes
    proof: list[Base64Bytes]


class LogBundle(_Msg):
    """The proofs an answer comes with, so that a client proves it without asking the log
    again: a signed checkpoint (C2SP note, with the witnesses' cosignatures when the CAS
    requires them) that holds the entries the answer names, each with its inclusion proof,
    and the consistency proof from the tree of ``consistency_from`` entries (the one the
    client said it kept) to the checkpoint's. The client verifies all of it against its
    pinned keys; a CAS that sends none is asked the usual way."""

    checkpoint: str
    entries: list[LogBundleEntry]
    consistency_from: int | None = None
    consistency: list[Base64Bytes] = Field(default_factory=list)


class ProvisionResponse(_Msg):
    certificate_pem: str  # issued to tls_public_key by the policy's CA
    ca_certificate_pem: str
    serial: int
    sealed_config: Base64Bytes  # ServiceConfig JSON, sealed to box_public_key
    #: The indexes of the certificate's entry and of its policy version's entry in the
    #: CAS's transparency log: the runtime proves both before it trusts the answer.
    log_index: int | None = None
    policy_log_index: int | None = None
    #: Both entries' proofs, when asked for with ``?log_from=`` (the client's kept size).
    log_bundle: LogBundle | None = None


class InstanceStatus(_Msg):
    """``GET /v1/policies/{name}/instances/{serial}``: may a certificate still be trusted?

    ``live`` only while the instance's slot was not provisioned again since, its certificate
    has not expired, and the version in force still allows its service, TEE and measurement.
    """

    policy: str
    serial: int
    live: bool
    reason: str = ""  # why not live
    service: str = ""
    instance: int = 0
    policy_version: int = 0  # the version in force when answered
    expires_at: float = 0.0
    #: The index of the certificate's entry in the CAS's transparency log.
    log_index: int | None = None


class TagUpdate(_Msg):
    """``POST /v1/tags``: an attested instance moves a volume's tag (compare-and-swap)."""

    policy: str
    volume: str
    serial: PositiveInt64
    expected: str | None
    tag: str
    version: PositiveInt64
    signature: Base64Bytes  # ECDSA over tag_update_message(...) with the instance's TLS key


class AuditHead(_Msg):
    """The last entry of the whole log when a page was read: its ``seq``, ``chain`` (hex) and
    ``signature`` (hex, the audit key's over the chain; empty while the log is empty)."""

    seq: Annotated[int, Field(ge=0)]
    chain: str
    signature: str


class RegisteredTag(_Msg):
    """``POST /v1/policies/{name}/volumes/{volume}/tag``: the state an owner registered."""

    volume: str
    previous: str | None  # the tag recorded before (None: none was)
    tag: str
    version: int


class AuditPage(_Msg):
    """``POST /v1/policies/{name}/audit?after=N``: the entries after seq ``N``, at most a
    page, never past ``head``; other policies' entries carry only digest, chain and
    signature. A reader asks again with the last ``seq`` until it reaches ``head.seq``."""

    entries: list[dict[str, object]]
    head: AuditHead


class LogEntries(_Msg):
    """``GET /v1/log/entries``: entries ``start``.. of the transparency log, exact bytes."""

    start: int
    entries: list[Base64Bytes]


class LogProof(_Msg):
    """``GET /v1/log/proof/...``: an RFC 9162 proof, hashes leaf side first.

    Inclusion: of entry ``first`` in the tree of ``second``; consistency: of the tree of
    ``first`` with the tree of ``second``.
    """

    kind: Literal["inclusion", "consistency"]
    first: int
    second: int
    hashes: list[Base64Bytes]


class WitnessCosignature(_Msg):
    """``POST /v1/log/witness/cosignature``: a witness's cosignature/v1 of the CAS's
    checkpoint of ``size`` entries, as the signed-note line it would add to the note."""

    size: PositiveInt64
    signature: Annotated[str, Field(max_length=512)]


class CosignatureKept(_Msg):
    """The answer to a cosignature: False when the witness had cosigned a larger tree."""

    kept: bool

"""The policy model: YAML in, validated objects out; canonical hashing; update rules.

Pure: no network, no disk, and no clock but the one a caller passes in. The reference is
docs/policy.md; the JSON Schema is docs/policy.schema.json; limits live in
:mod:`securetf.policy.limits`.
"""

from securetf.policy._canonical import (
    canonical_json,
    policy_canonical_json,
    policy_hash,
    policy_json_schema,
    policy_json_schema_text,
)
from securetf.policy._errors import GovernanceError
from securetf.policy._governance import (
    Approval,
    ThresholdNotMet,
    VerifiedChange,
    check_create,
    check_read,
    check_update,
)
from securetf.policy._model import Governance, Owner, Policy, Volume
from securetf.policy._requests import (
    SIGNING_CONTEXT,
    Action,
    Request,
    SignedRequest,
    import_digest,
    sign_request,
)
from securetf.policy._secrets import RandomSecret, Secret, VolumeKeySecret, X509Secret
from securetf.policy._services import (
    CodeVolume,
    Mount,
    Network,
    Output,
    SealedOutput,
    Service,
    Tmpfs,
    User,
)
from securetf.policy._tee import SgxReference, SnpReference, SnpTcb, TdxReference, Tee
from securetf.policy._templates import (
    Reference,
    parse_template,
    render,
    render_bytes,
    template_references,
)
from securetf.policy._update import VersionFields, fill_version, policy_changes, version_fields

__all__ = [
    "SIGNING_CONTEXT",
    "Action",
    "Approval",
    "CodeVolume",
    "Governance",
    "GovernanceError",
    "Mount",
    "Network",
    "Output",
    "Owner",
    "Policy",
    "RandomSecret",
    "Reference",
    "Request",
    "SealedOutput",
    "Secret",
    "Service",
    "SgxReference",
    "SignedRequest",
    "SnpReference",
    "SnpTcb",
    "TdxReference",
    "Tee",
    "ThresholdNotMet",
    "Tmpfs",
    "User",
    "VerifiedChange",
    "VersionFields",
    "Volume",
    "VolumeKeySecret",
    "X509Secret",
    "canonical_json",
    "check_create",
    "check_read",
    "check_update",
    "fill_version",
    "import_digest",
    "parse_template",
    "policy_canonical_json",
    "policy_changes",
    "policy_hash",
    "policy_json_schema",
    "policy_json_schema_text",
    "render",
    "render_bytes",
    "sign_request",
    "template_references",
    "version_fields",
]

"""The policy model: YAML in, validated objects out; canonical hashing; update rules.

Pure: no network, no disk, and no clock but the one a caller passes in. The reference is
docs/policy.md; the JSON Schema is docs/policy.schema.json; limits live in
:mod:`securetf.policy.limits`.
"""

import typing as _typing

from securetf._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from securetf.policy._canonical import canonical_json, policy_canonical_json, policy_hash
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
    from securetf.policy._schema import policy_json_schema, policy_json_schema_text
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

#: Each name is imported from its module on first use: the runtime needs a service's
#: ``User``, ``Tmpfs`` and output, not the policy's governance, requests or TEE
#: references, whose imports would cost ``securetf run`` a tenth of a second. No
#: submodule is named like one of these names (it would hide the name once imported).
_WHERE: dict[str, str] = {
    "canonical_json": "_canonical",
    "policy_canonical_json": "_canonical",
    "policy_hash": "_canonical",
    "policy_json_schema": "_schema",
    "policy_json_schema_text": "_schema",
    "GovernanceError": "_errors",
    "Approval": "_governance",
    "ThresholdNotMet": "_governance",
    "VerifiedChange": "_governance",
    "check_create": "_governance",
    "check_read": "_governance",
    "check_update": "_governance",
    "Governance": "_model",
    "Owner": "_model",
    "Policy": "_model",
    "Volume": "_model",
    "SIGNING_CONTEXT": "_requests",
    "Action": "_requests",
    "Request": "_requests",
    "SignedRequest": "_requests",
    "import_digest": "_requests",
    "sign_request": "_requests",
    "RandomSecret": "_secrets",
    "Secret": "_secrets",
    "VolumeKeySecret": "_secrets",
    "X509Secret": "_secrets",
    "CodeVolume": "_services",
    "Mount": "_services",
    "Network": "_services",
    "Output": "_services",
    "SealedOutput": "_services",
    "Service": "_services",
    "Tmpfs": "_services",
    "User": "_services",
    "SgxReference": "_tee",
    "SnpReference": "_tee",
    "SnpTcb": "_tee",
    "TdxReference": "_tee",
    "Tee": "_tee",
    "Reference": "_templates",
    "parse_template": "_templates",
    "render": "_templates",
    "render_bytes": "_templates",
    "template_references": "_templates",
    "VersionFields": "_update",
    "fill_version": "_update",
    "policy_changes": "_update",
    "version_fields": "_update",
}

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


__getattr__ = _lazy_names(__name__, _WHERE)

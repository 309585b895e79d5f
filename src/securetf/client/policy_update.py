"""An owner's policy file made ready to apply: version and predecessor taken from the
version in force when the file leaves them out, and what it changes from that version."""

from __future__ import annotations

from dataclasses import dataclass

from securetf.client.cas import CasClient
from securetf.crypto import SigningKey
from securetf.errors import NotFoundError, PolicyError
from securetf.policy import Policy, fill_version, policy_changes, version_fields
from securetf.protocol import PolicyDoc


@dataclass(frozen=True)
class PreparedPolicy:
    yaml: bytes
    """The bytes to sign and upload (the owner's file, with any filled-in lines)."""
    policy: Policy
    in_force: PolicyDoc | None
    """The version it replaces, or None for a new policy."""
    changes: list[str]


def prepare_policy(client: CasClient, yaml: bytes, key: SigningKey) -> PreparedPolicy:
    """Read the owner's file, fill in what it leaves out, and compare it with the version
    in force (fetched with ``key``, which must be an owner's, as applying needs anyway)."""
    fields = version_fields(yaml)
    if fields.name is None:
        Policy.from_yaml(yaml)  # names what is wrong with the file
        raise PolicyError("the policy has no name: add 'name: my-policy' at the top")
    try:
        doc: PolicyDoc | None = client.policy(fields.name)
    except NotFoundError:
        doc = None
    if not (fields.has_version and fields.has_predecessor):
        version = fields.version or (doc.version + 1 if doc is not None else 1)
        predecessor = doc.hash if doc is not None and version > 1 else None
        yaml = fill_version(yaml, version=version, predecessor=predecessor)
    policy = Policy.from_yaml(yaml)
    old = None
    if doc is not None:
        _check_next(policy, doc)
        shown = client.show_policy(doc.name, key)
        if shown.policy_yaml is not None:
            old = Policy.from_yaml(shown.policy_yaml)
    elif policy.version != 1:
        raise PolicyError(
            f"policy {policy.name!r} is not at this CAS yet, so this is version 1: remove the "
            "'version' and 'predecessor' lines (securetf policy apply fills them in)"
        )
    return PreparedPolicy(yaml, policy, doc, policy_changes(old, policy))


def _check_next(policy: Policy, doc: PolicyDoc) -> None:
    """The file must name the version after the one in force, and that version's hash."""
    fix = (
        "remove the 'version' and 'predecessor' lines and apply again (securetf policy apply "
        f"fills them in), or write version: {doc.version + 1} and predecessor: "
        f'"{doc.hash}"'
    )
    if policy.version != doc.version + 1:
        raise PolicyError(
            f"the file says version {policy.version}, but version {doc.version} of policy "
            f"{doc.name!r} is in force: {fix}"
        )
    if policy.predecessor != doc.hash:
        raise PolicyError(
            f"the file's predecessor {policy.predecessor} is not the hash of version "
            f"{doc.version} in force ({doc.hash}): {fix}"
        )

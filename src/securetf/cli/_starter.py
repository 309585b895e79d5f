"""The commented starter policy ``securetf init`` writes: one service, an input and an
output volume, one owner, the simulated TEE named explicitly. Pure text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_NOT_LABEL = re.compile(r"[^a-z0-9-]+")
_NOT_OWNER = re.compile(r"[^A-Za-z0-9._@+-]+")


def policy_name_for(text: str) -> str:
    """A DNS label made from ``text`` (an app directory's name), or ``my-app``."""
    label = _NOT_LABEL.sub("-", text.lower()).strip("-")[:63].strip("-")
    return label or "my-app"


def owner_name_for(text: str) -> str:
    """An owner name made from ``text`` (a key file's stem), or ``owner``."""
    return _NOT_OWNER.sub("-", text)[:64] or "owner"


@dataclass(frozen=True)
class Starter:
    name: str
    owner: str
    public_key: str
    service: str
    command: tuple[str, ...]
    measurement: str


def starter_policy(s: Starter) -> str:
    """The policy YAML, commented for a first reader; ``securetf policy apply`` takes it as
    it is (it fills in version and predecessor)."""
    q = json.dumps  # JSON strings are YAML strings
    command = ", ".join(q(word) for word in s.command)
    return f"""\
# A securetf policy: who may change it, which TEEs may run {s.service}, with which data.
# Reference: docs/policy.md. Apply it (and every edit of it) with
#   securetf policy apply THIS_FILE --cas URL --key YOUR_OWNER_KEY
# which fills in 'version' and 'predecessor' from the version in force, shows what
# changes and asks before applying.
name: {s.name}                     # unique at the CAS

governance:
  owners:                          # who may update this policy and read its audit trail
    - {{name: {q(s.owner)}, public_key: {q(s.public_key)}}}
  update_threshold: 1              # owners' signatures an update needs

tee:
  # sim protects NOTHING: it is for development on a machine without a TEE, and a
  # policy must name it to allow it. For production list tdx, sev-snp or sgx instead
  # (with their reference values, docs/policy.md).
  allow: [sim]

secrets:
  # The input's key: you make it (securetf volume keygen) and upload it with the policy
  # (securetf policy apply --secret data-key=FILE); the CAS gives it only to {s.service}.
  data-key: {{kind: volume-key, source: imported}}
  # The output's key: the CAS makes it; owners may fetch it (securetf secret get).
  model-key: {{kind: volume-key, source: generated, export_to_owners: true}}

volumes:
  # protected: the CAS records each state, and a run refuses any other (no rollback).
  data: {{key: data-key, rollback: protected}}
  model: {{key: model-key, rollback: protected}}

services:
  {s.service}:
    # The app directory and command, measured by securetf init. After any change to the
    # app, print the new value with
    #   securetf measure --policy THIS_FILE --service {s.service} --app APP_DIR
    # put it here, and apply the policy again.
    measurement: {q(s.measurement)}
    command: [{command}]
    mounts:
      - {{volume: data, path: /data, mode: ro}}     # the program reads its input here
      - {{volume: model, path: /model, mode: rw}}   # and writes its output here
    environment:                   # nothing of the operator's environment reaches it
      DATA_DIR: /data
      MODEL_DIR: /model
    # env_image: "sha256:..."      # pin a measured Python environment (securetf env pack);
    #                              # without it the program sees securetf's own, unmeasured
"""

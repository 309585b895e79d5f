"""What ``securetf run`` tells the operator when the CAS refuses the app or the program
fails: the value and the commands to act on, never a secret of the run."""

from __future__ import annotations

import os
import shlex
from collections.abc import Collection
from pathlib import Path

from securetf.errors import MeasurementError
from securetf.runtime._writes import RefusedWrites
from securetf.runtime.measure import Measurement, measurement_text


def measurement_refused(
    refusal: MeasurementError,
    measured: Measurement,
    *,
    policy: str,
    service: str,
    cas: str,
    app: Path | None,
) -> MeasurementError:
    """The CAS's refusal of the app, with what this run measured and how an owner who
    means to run this code updates the policy (``app``: None for a sealed code volume)."""
    measure = ["securetf", "measure", "--policy", "POLICY.yaml", "--service", service]
    if app is not None:
        measure += ["--app", os.path.abspath(app)]
    apply = ["securetf", "policy", "apply", "POLICY.yaml", "--cas", cas, "--key", "OWNER.key"]
    # 'policy apply' fills version and predecessor in from the version in force.
    what = "the app" if app is not None else "its launcher"
    return MeasurementError(
        f"the CAS refused to provision the service: {refusal}.\n"
        f"This run measured {what} as {measurement_text(measured.digest)} "
        f"(the command runs {measured.executable}).\n"
        f"If the service should run this code, an owner of policy {policy!r} adds that value "
        f"to services.{service}.measurement in the policy's YAML ('{shlex.join(measure)}' "
        "prints it; run it where the service runs) and applies the policy again "
        f"('{shlex.join(apply)}': it fills in the next version and its predecessor, shows "
        "the change and asks).\n"
        "If this is not the code meant to run here, do not change the policy: run the code "
        "it names."
    )


def failure_note(
    code: int,
    memory: Collection[str],
    volumes: Collection[str],
    refused: RefusedWrites | None,
) -> str:
    """Where a program that exited with ``code`` could write, and where it was refused
    (with ``--trace-writes``) or how to learn it (without)."""
    trace = (
        f" Traced: {refused.summary()}."
        if refused is not None
        else " Run again with --trace-writes to have the runtime name where writes were refused."
    )
    return (
        f"the program exited with code {code}. In its view only memory "
        f"({', '.join(sorted(memory))}) and its read-write volumes "
        f"({', '.join(sorted(volumes)) or 'none'}) are writable; a write anywhere else fails "
        "with 'Read-only file system' (EROFS) or 'No such file or directory' (ENOENT), "
        'which its own error names with the path (docs/runtime.md, "The program\'s view").' + trace
    )

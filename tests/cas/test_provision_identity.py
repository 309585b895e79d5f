"""The CAS's appraisal of provisioning evidence (``_provision.verify``): the image by the
policy's reference values."""

from __future__ import annotations

import json

import pytest

from securetf.attestation import load_or_create_platform_key, reference_values, verify_dcap
from securetf.cas import _provision
from securetf.cas._records import PolicyVersion
from securetf.crypto import sha256
from securetf.errors import AttestationError
from securetf.protocol import ProvisionRequest
from tests.attestation.vectors import DCAP, vector
from tests.cas.support import Owners, Runtime, policy_yaml

TDX = DCAP[1]


def stored(yaml: bytes) -> PolicyVersion:
    return PolicyVersion("cancer", 1, "sha256:" + sha256(yaml).hex(), yaml, (), 0.0)


def verify(yaml: bytes, req: ProvisionRequest, runtime: Runtime, *, now: float) -> None:
    """Verify ``req`` against ``yaml`` as the CAS does, or raise its refusal."""
    trust = [load_or_create_platform_key(runtime.home).verify_key()]
    _provision.verify(stored(yaml), req, now=now, sim_trust=trust)


def tdx_request(runtime: Runtime) -> ProvisionRequest:
    return ProvisionRequest(
        policy="cancer",
        service="train",
        tee="tdx",
        evidence=TDX.quote,
        nonce=b"\x07" * 40,
        tls_public_key=runtime.tls.public_der(),
        box_public_key=runtime.box.public(),
        collateral=vector(TDX.collateral_file).read_text(),
    )


def tdx_policy(owners: Owners, **changed: str) -> bytes:
    """A tdx-only policy naming the real TDX quote's image, with ``changed`` values."""
    claims = verify_dcap(TDX.quote, TDX.collateral, tee="tdx", now=TDX.at)
    fields = {**reference_values(claims), **changed}
    section = f"  allow: [tdx]\n  tdx: {json.dumps(fields)}\n"
    return policy_yaml(owners, allow="[tdx]").replace(b"  allow: [tdx]\n", section.encode())


def test_cas_compares_the_rtmrs_of_real_tdx_evidence(owners: Owners, runtime: Runtime) -> None:
    with pytest.raises(AttestationError, match=r"rtmr2 is d833feef\w+, the policy expects abab"):
        verify(tdx_policy(owners, rtmr2="ab" * 48), tdx_request(runtime), runtime, now=TDX.at)
    # With the right values the image passes, and the report data is what refuses it: the
    # real quote binds no nonce, key or app of ours.
    with pytest.raises(AttestationError, match="report data does not match"):
        verify(tdx_policy(owners), tdx_request(runtime), runtime, now=TDX.at)


def test_cas_refuses_a_hardware_tee_the_policy_names_no_image_for(
    owners: Owners, runtime: Runtime
) -> None:
    yaml = policy_yaml(owners, allow="[tdx]")
    with pytest.raises(AttestationError, match="names no reference values for tdx"):
        verify(yaml, tdx_request(runtime), runtime, now=TDX.at)

"""The CAS's appraisal of provisioning evidence (``_provision.verify``): the image by the
policy's reference values, and the app by the measurement the report data binds."""

from __future__ import annotations

import json
import time

import pytest

from securetf.attestation import load_or_create_platform_key, reference_values, verify_dcap
from securetf.cas import _provision
from securetf.cas._evidence import EvidenceVerifier
from securetf.cas._records import PolicyVersion
from securetf.crypto import sha256
from securetf.errors import AttestationError, MeasurementError
from securetf.protocol import ProvisionRequest
from tests.attestation.vectors import DCAP, vector
from tests.cas.support import MEASUREMENT, SERVE_MEASUREMENT, Owners, Runtime, policy_yaml

OTHER_APP = sha256(b"another app")
TDX = DCAP[1]


def stored(yaml: bytes) -> PolicyVersion:
    return PolicyVersion("cancer", 1, "sha256:" + sha256(yaml).hex(), yaml, (), 0.0)


def verify(
    yaml: bytes, req: ProvisionRequest, runtime: Runtime, *, now: float | None = None
) -> bytes:
    """The app measurement the CAS accepts for ``req``, or the refusal."""
    trust = [load_or_create_platform_key(runtime.home).verify_key()]
    verified = _provision.verify(
        stored(yaml),
        req,
        now=time.time() if now is None else now,
        evidence=EvidenceVerifier(sim_trust=trust),
    )
    return verified.measurement


def two_apps(owners: Owners) -> bytes:
    """train allows its own measurement and OTHER_APP."""
    yaml = policy_yaml(owners)
    one = f'measurement: "sha256:{MEASUREMENT.hex()}"'.encode()
    both = f'measurement: ["sha256:{MEASUREMENT.hex()}", "sha256:{OTHER_APP.hex()}"]'.encode()
    return yaml.replace(one, both)


def test_the_bound_app_measurement_is_accepted_and_recorded(
    owners: Owners, runtime: Runtime
) -> None:
    nonce = b"\x07" * 40
    assert verify(two_apps(owners), runtime.request(nonce), runtime) == MEASUREMENT
    other = Runtime(home=runtime.home, measurement=OTHER_APP)
    assert verify(two_apps(owners), other.request(nonce), runtime) == OTHER_APP


@pytest.mark.parametrize(
    "bound",
    [OTHER_APP, SERVE_MEASUREMENT],
    ids=["an-app-no-policy-names", "the-serve-services-app"],
)
def test_evidence_binding_another_app_measurement_is_refused(
    owners: Owners, runtime: Runtime, bound: bytes
) -> None:
    req = runtime.request(b"\x07" * 40, bound_measurement=bound)
    with pytest.raises(AttestationError, match="or for an app the policy does not name") as no:
        verify(policy_yaml(owners), req, runtime)
    # The sim's own measurement is listed: the binding, not the app, is what is wrong.
    assert not isinstance(no.value, MeasurementError)


def test_an_unlisted_app_is_refused_naming_only_its_own_measurement(
    owners: Owners, runtime: Runtime
) -> None:
    other = Runtime(home=runtime.home, measurement=OTHER_APP)
    with pytest.raises(MeasurementError) as refused:
        verify(policy_yaml(owners), other.request(b"\x07" * 40), runtime)
    message = str(refused.value)
    assert f"the app measurement sha256:{OTHER_APP.hex()} is not one that service 'train'" in (
        message
    )
    assert MEASUREMENT.hex() not in message


def test_evidence_binding_another_allowed_app_than_it_measured_is_refused(
    owners: Owners, runtime: Runtime
) -> None:
    # The sim evidence says MEASUREMENT but binds OTHER_APP: both are allowed, yet they
    # disagree, so the statement of the app is not the one attested.
    req = runtime.request(b"\x07" * 40, bound_measurement=OTHER_APP)
    with pytest.raises(AttestationError, match="not the app its report data binds") as no:
        verify(two_apps(owners), req, runtime)
    assert not isinstance(no.value, MeasurementError)


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
    # real quote binds no nonce, key or app of ours. Hardware evidence carries the app only
    # in that binding: the refusal is for the app, without naming any of the policy's.
    with pytest.raises(MeasurementError, match="binds no app measurement that service") as no:
        verify(tdx_policy(owners), tdx_request(runtime), runtime, now=TDX.at)
    assert MEASUREMENT.hex() not in str(no.value)


def test_cas_refuses_a_hardware_tee_the_policy_names_no_image_for(
    owners: Owners, runtime: Runtime
) -> None:
    yaml = policy_yaml(owners, allow="[tdx]")
    with pytest.raises(AttestationError, match="names no reference values for tdx"):
        verify(yaml, tdx_request(runtime), runtime, now=TDX.at)

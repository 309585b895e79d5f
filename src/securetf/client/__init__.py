"""The securetf SDK for owners and clients: attest a CAS, talk to it, verify servers.

Each name is imported from its module on first use: ``securetf run`` needs the CAS client
and the liveness check, not the CAS's attestation verifiers or the serving client, and
their imports would be a tenth of its start-up.

No submodule is named like one of these names: importing it would bind the package's
attribute to the module, hiding the lazily imported name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securetf._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:
    from securetf.client.cas import CasClient
    from securetf.client.cas_attest import CasAttestation, attest_cas, verify_cas
    from securetf.client.liveness import LivenessChecker, NotLiveError
    from securetf.client.pins import CasPin, load_pin, save_pin
    from securetf.client.serving import ServingClient, serving_name

_WHERE = {
    "CasAttestation": "cas_attest",
    "attest_cas": "cas_attest",
    "verify_cas": "cas_attest",
    "CasClient": "cas",
    "LivenessChecker": "liveness",
    "NotLiveError": "liveness",
    "CasPin": "pins",
    "load_pin": "pins",
    "save_pin": "pins",
    "ServingClient": "serving",
    "serving_name": "serving",
}

__all__ = [
    "CasAttestation",
    "CasClient",
    "CasPin",
    "LivenessChecker",
    "NotLiveError",
    "ServingClient",
    "attest_cas",
    "load_pin",
    "save_pin",
    "serving_name",
    "verify_cas",
]


__getattr__ = _lazy_names(__name__, _WHERE)

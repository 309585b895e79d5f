"""The securetf SDK for owners and clients: attest a CAS, talk to it, verify servers."""

from securetf.client.attest_cas import CasAttestation, attest_cas, verify_cas
from securetf.client.cas import CasClient
from securetf.client.liveness import LivenessChecker, NotLiveError
from securetf.client.pins import CasPin, load_pin, save_pin
from securetf.client.serving import ServingClient, serving_name

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

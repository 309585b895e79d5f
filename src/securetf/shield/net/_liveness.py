"""Whether a peer's verified certificate still speaks for a live instance.

Only the CAS knows (docs/cas.md, "Revocation"): a superseded or revoked instance's
certificate still chains to the policy's CA and names its service. The runtime injects a
checker that asks the CAS (:class:`securetf.client.LivenessChecker`); tests inject one too.
"""

from __future__ import annotations

from typing import Protocol

from securetf.errors import Error
from securetf.shield.net._errors import PeerRefusedError


class PeerLiveness(Protocol):
    def check(self, der: bytes) -> object:
        """Return if the CAS says the certificate ``der`` is live; raise a securetf
        :class:`~securetf.errors.Error` otherwise, also when the CAS cannot be asked."""
        ...


def require_live(liveness: PeerLiveness, der: bytes) -> None:
    """After the chain, the name and the service were checked: the CAS still vouches."""
    try:
        liveness.check(der)
    except Error as exc:
        raise PeerRefusedError(str(exc)) from None

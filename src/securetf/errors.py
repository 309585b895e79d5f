"""The one exception root of securetf and its user-facing families.

Every error that crosses a public API is a :class:`Error`. Its ``str()`` is a message a
user can act on; :meth:`Error.diagnostics` may add detail for logs. The CLI catches only
this root, prints the message and exits with :attr:`Error.exit_code`.

Exit codes (documented in the README):

==== ==========================================================
0    success
1    any other error (:class:`Error`)
2    bad usage or bad input (:class:`UsageError`)
3    integrity failure: tampered, truncated or rolled-back data
4    wrong key or failed authentication
5    attestation or policy refused the evidence
==== ==========================================================
"""

from __future__ import annotations

__all__ = [
    "AttestationError",
    "AuthenticationError",
    "Error",
    "IntegrityError",
    "MeasurementError",
    "NotFoundError",
    "PolicyError",
    "RollbackError",
    "UsageError",
]


class Error(Exception):
    """Root of every securetf error."""

    exit_code: int = 1

    def diagnostics(self) -> str:
        """The message, for a person; subclasses may add detail for logs."""
        return str(self)


class UsageError(Error):
    """The caller asked for something impossible: bad arguments, bad input files."""

    exit_code = 2


class NotFoundError(UsageError):
    """A named file, volume, policy or entry does not exist."""


class PolicyError(UsageError):
    """A policy, or a signed request about one, is malformed or breaks the update rules."""


class IntegrityError(Error):
    """Data failed authentication.

    Deliberately opaque: it never says which byte, chunk or file failed, so an attacker
    probing a volume learns nothing from it.
    """

    exit_code = 3

    def __init__(self, message: str = "integrity check failed") -> None:
        super().__init__(message)


class RollbackError(IntegrityError):
    """Data is authentic but older than the state the caller expects."""


class AuthenticationError(Error):
    """A key or credential does not match (for example a volume opened with the wrong key)."""

    exit_code = 4


class AttestationError(Error):
    """TEE evidence is malformed, unauthentic, or not acceptable under the given policy."""

    exit_code = 5


class MeasurementError(AttestationError):
    """The evidence is sound, but the code it measured is not one the policy allows.

    The message names the evidence's own measurement (the caller's), never the ones the
    policy allows: the caller learns only that its code is not listed.
    """

"""Named limits of the CAS."""

from __future__ import annotations

from dataclasses import dataclass, field

from securetf._http.limits import HttpLimits


@dataclass(frozen=True)
class CasSettings:
    #: A provisioning nonce is single-use and expires this many seconds after issue.
    nonce_ttl_seconds: float = 60.0
    #: Lifetime of an instance certificate (and of its right to move volume tags).
    instance_cert_seconds: float = 24 * 3600.0
    #: Lifetime of a policy CA.
    ca_valid_days: int = 3650
    #: Largest policy upload accepted by the API (the policy parser has its own limit).
    max_request_bytes: int = 4 * 1024 * 1024
    #: Most audit entries returned by one call.
    audit_page: int = 10_000
    #: How long and how many connections HTTP clients may hold (timeouts, connection limit).
    http: HttpLimits = field(default_factory=HttpLimits)

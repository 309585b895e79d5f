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
    #: Most audit entries in one page of an owner's read (the reader asks for the next page
    #: until it reaches the head).
    audit_page: int = 1_000
    #: Longest text kept of each string a refused request brings into its audit entry
    #: (after escaping control characters); a longer one keeps its start and its length.
    audit_detail_chars: int = 256
    #: Refusals from one source (client address) written to the audit log per window; the
    #: rest are counted, and the source's next entry carries the count.
    audit_refusals_per_source: int = 10
    audit_refusal_window_seconds: float = 60.0
    #: Most sources whose refusals are tracked at once; refusals of further sources are
    #: counted (in the next entry written) until a window ends.
    audit_refusal_sources: int = 4096
    #: How long and how many connections HTTP clients may hold (timeouts, connection limit).
    http: HttpLimits = field(default_factory=HttpLimits)
    #: The transparency log's witnesses (cosignature vkeys), and how many of them must
    #: cosign a checkpoint before ``/v1/log/checkpoint`` serves it (0: none required).
    log_witnesses: tuple[str, ...] = ()
    log_witness_threshold: int = 0

"""Where verification gets its collateral: a PCCS, AMD's KDS, an offline bundle, a cache.

SGX and TDX quotes need Intel's collateral (TCB info, QE identity, CRLs and their issuer
chains); SEV-SNP reports need the VCEK certificate of their chip at their reported TCB.
:class:`CollateralSource` finds them, for the CAS and for clients that verify a CAS's own
evidence. It decides nothing about trust: whatever it returns is verified by
:func:`~securetf.attestation.verify_evidence` (the collateral and the VCEK are signed by
Intel and AMD), so a tampered cache or bundle can make verification fail, never pass.

Order, for each request (the first that has something valid at ``now`` wins):

1. the cache directory: an entry fetched before, until it expires;
2. the offline bundle: a file an operator copies to machines without network access;
3. the configured service (a PCCS for SGX/TDX, AMD's KDS for SEV-SNP), whose answer is
   then cached.

Something whose expiry is at or before ``now`` is never returned. The expiry of DCAP
collateral is :func:`collateral_expiry` (the earliest ``nextUpdate`` or ``notAfter`` of
its parts); a VCEK's is its ``notAfter``.

Keys: DCAP collateral is looked up by TEE (``sgx``/``tdx``) and the SHA-256 of the quote's
PCK certificate chain as canonical PEM (the certificates concatenated, without the NUL some
quoting enclaves append): one entry per platform. A VCEK is looked up by the report's chip
id and reported TCB.

Offline bundle, one JSON file (``make_bundle`` writes it, sorted, with one-space indent)::

    {
     "version": 1,
     "dcap": [
      {"tee": "sgx" | "tdx",
       "pck_chain_sha256": "<64 hex digits>",
       "collateral": {<dcap-qvl collateral object, as dcap_qvl.get_collateral returns>}}
     ],
     "snp": [
      {"chip_id": "<128 hex digits>",
       "reported_tcb": "<16 hex digits, the report's REPORTED_TCB bytes>",
       "vcek": "<base64 of the VCEK certificate, DER>"}
     ]
    }

Both lists are optional; no other keys are allowed; two entries with the same key are an
error. Cache entries (``cache_dir``, files of mode 0600 written atomically) are
``dcap-<tee>-<pck_chain_sha256>.json`` (``{"version": 1, "tee", "pck_chain_sha256",
"expiry", "collateral"}``) and ``vcek-<chip_id>-<reported_tcb>.der``. A cache entry that
cannot be read or parsed is ignored (and replaced by the next fetch). See docs/collateral.md.
"""

from __future__ import annotations

from securetf.attestation.collateral._bundle import (
    BundleEntry,
    DcapBundleEntry,
    SnpBundleEntry,
    add_to_bundle,
    make_bundle,
    read_bundle,
)
from securetf.attestation.collateral._common import BUNDLE_VERSION, DcapFetcher, VcekFetcher
from securetf.attestation.collateral._expiry import collateral_expiry
from securetf.attestation.collateral._source import CollateralSource

__all__ = [
    "BUNDLE_VERSION",
    "BundleEntry",
    "CollateralSource",
    "DcapBundleEntry",
    "DcapFetcher",
    "SnpBundleEntry",
    "VcekFetcher",
    "add_to_bundle",
    "collateral_expiry",
    "make_bundle",
    "read_bundle",
]

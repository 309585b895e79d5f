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

import base64
import binascii
import hashlib
import importlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from securetf._fsutil import atomic_write, read_file
from securetf._logutil import warn_loudly
from securetf.attestation import _dcap_binding
from securetf.attestation._dcap_layout import TEE_SGX, TEE_TDX, QuoteLayout, check_quote_layout
from securetf.attestation.dcap import MAX_COLLATERAL_SIZE, Collateral, fetch_collateral
from securetf.attestation.snp_report import SnpReport
from securetf.crypto import Certificate, verify_ecdsa_p384_sha384
from securetf.errors import AttestationError, AuthenticationError, Error, UsageError

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

_log = logging.getLogger(__name__)

BUNDLE_VERSION = 1
MAX_BUNDLE_SIZE = 64 * 1024 * 1024
MAX_VCEK_SIZE = 16 * 1024
_CACHE_VERSION = 1
# A cache entry is the collateral plus a few short fields.
_MAX_CACHE_ENTRY = MAX_COLLATERAL_SIZE + 4096

#: Fetches DCAP collateral: ``(quote, pccs_url) -> Collateral`` (network I/O).
DcapFetcher = Callable[[bytes, str], Collateral]
#: Fetches a VCEK: ``(kds_url, report) -> VCEK DER`` (network I/O).
VcekFetcher = Callable[[str, bytes], bytes]

_DCAP_TEES = {"sgx": TEE_SGX, "tdx": TEE_TDX}
_PCCS_HINT = "configure --pccs / SECURETF_PCCS_URL"
_KDS_HINT = "configure --kds / SECURETF_KDS_URL"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHIP_ID_SIZE = 64
_TCB_SIZE = 8

T = TypeVar("T")
E = TypeVar("E", "DcapBundleEntry", "SnpBundleEntry")


def _when(t: int) -> str:
    """``t`` (unix seconds) as ISO 8601 UTC."""
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"unix time {t}"


# ---------------------------------------------------------------------------------------
# Expiry of DCAP collateral
# ---------------------------------------------------------------------------------------

# dcap-qvl field -> the name of the signed object it holds (Intel PCS API).
_SIGNED_JSON = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}
_CRLS = {"root_ca_crl": "root CA CRL", "pck_crl": "PCK CRL"}
_CHAINS = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")
_OPTIONAL_CHAINS = ("pck_certificate_chain",)


def _iso_time(value: object, what: str) -> int:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {what} is not a date-time string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"collateral's {what} {value!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise UsageError(f"collateral's {what} {value!r} has no time zone (Intel writes ...Z)")
    return int(when.timestamp())


def _next_update(fields: dict[str, Any], key: str, name: str) -> int:
    text = fields.get(key)
    if not isinstance(text, str):
        raise UsageError(f"collateral's {key} is missing or not a JSON string (the {name})")
    try:
        signed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise UsageError(f"collateral's {key} is not JSON (the {name})") from None
    if not isinstance(signed, dict):
        raise UsageError(f"collateral's {key} is not a JSON object (the {name})")
    return _iso_time(signed.get("nextUpdate"), f"{name}.nextUpdate")


def _crl_next_update(value: object, key: str, name: str) -> int:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {key} is missing or not a hex or PEM string (the {name})")
    try:
        if value.lstrip().startswith("-----BEGIN"):
            crl = x509.load_pem_x509_crl(value.encode())
        else:
            crl = x509.load_der_x509_crl(bytes.fromhex(value))
        next_update = crl.next_update_utc
    except ValueError:
        raise UsageError(
            f"collateral's {key} is not an X.509 CRL, DER in hex or PEM (the {name})"
        ) from None
    if next_update is None:
        raise UsageError(f"collateral's {key} has no nextUpdate (the {name})")
    return int(next_update.timestamp())


def _chain_not_after(value: object, key: str) -> list[tuple[str, int]]:
    if not isinstance(value, str):
        raise UsageError(f"collateral's {key} is missing or not a PEM string")
    try:
        certs = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise UsageError(f"collateral's {key} is not a PEM certificate chain") from None
    parts = []
    for cert in certs:
        names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else cert.subject.rfc4514_string()
        parts.append(
            (f"{key} certificate {cn!r} notAfter", int(cert.not_valid_after_utc.timestamp()))
        )
    return parts


def _collateral_fields(collateral_json: str) -> dict[str, Any]:
    if not isinstance(collateral_json, str):
        raise UsageError("collateral must be given as JSON text")
    if len(collateral_json) > MAX_COLLATERAL_SIZE:
        raise UsageError(f"collateral is larger than {MAX_COLLATERAL_SIZE} bytes")
    try:
        fields = json.loads(collateral_json)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"collateral is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise UsageError("collateral is not a JSON object")
    return fields


def _expiry_parts(collateral_json: str) -> list[tuple[str, int]]:
    """Each expiring part of DCAP collateral and when it stops being valid (unix seconds)."""
    fields = _collateral_fields(collateral_json)
    parts = [
        (f"{name}.nextUpdate", _next_update(fields, k, name)) for k, name in _SIGNED_JSON.items()
    ]
    parts += [
        (f"{name} nextUpdate", _crl_next_update(fields.get(k), k, name))
        for k, name in _CRLS.items()
    ]
    for key in _CHAINS:
        parts += _chain_not_after(fields.get(key), key)
    for key in _OPTIONAL_CHAINS:
        if fields.get(key) is not None:
            parts += _chain_not_after(fields[key], key)
    return parts


def _earliest(collateral_json: str) -> tuple[int, str]:
    what, when = min(_expiry_parts(collateral_json), key=lambda part: part[1])
    return when, what


def collateral_expiry(collateral_json: str) -> int:
    """The earliest time (unix seconds) at which any part of DCAP collateral stops being valid.

    The parts: ``tcbInfo.nextUpdate``, ``enclaveIdentity.nextUpdate`` (the QE identity),
    the ``nextUpdate`` of the root CA CRL and of the PCK CRL (DER in hex, or PEM), and the
    ``notAfter`` of every certificate of the issuer chains (and of the PCK chain, when the
    collateral carries one). Malformed collateral is a :class:`UsageError`.
    """
    return _earliest(collateral_json)[0]


def _collateral_text(collateral: Collateral) -> str:
    """``collateral`` back in dcap-qvl's JSON form (with its PCK chain, if it has one)."""
    text = _dcap_binding._call("cannot serialize collateral", collateral.native.to_json)
    if not isinstance(text, str):
        raise AttestationError("dcap-qvl returned collateral securetf does not understand")
    if collateral.pck_chain is not None:
        fields = json.loads(text)
        if "pck_certificate_chain" not in fields:
            chain = b"".join(cert.pem() for cert in collateral.pck_chain).decode()
            fields["pck_certificate_chain"] = chain
            text = json.dumps(fields)
    return text


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _layout(quote: bytes, roots: Sequence[Certificate]) -> QuoteLayout:
    """The quote's layout, its chain ending in Intel's root or one of ``roots`` (test roots)."""
    try:
        return check_quote_layout(quote)
    except AttestationError:
        for root in roots:
            try:
                return check_quote_layout(quote, root=root)
            except AttestationError:
                continue
        raise


def _dcap_key(tee: str, quote: bytes, roots: Sequence[Certificate] = ()) -> str:
    """The SHA-256 (hex) of ``quote``'s PCK chain as canonical PEM; the quote must be ``tee``."""
    if tee not in _DCAP_TEES:
        raise UsageError(f"DCAP collateral is for sgx or tdx quotes, not {tee!r}")
    layout = _layout(quote, roots)
    if layout.tee_type != _DCAP_TEES[tee]:
        actual = "tdx" if layout.tee_type == TEE_TDX else "sgx"
        raise AttestationError(f"this is a {actual} quote, not {tee}; use --tee {actual}")
    return hashlib.sha256(b"".join(cert.pem() for cert in layout.pck_chain)).hexdigest()


def _snp_key(report: bytes) -> tuple[SnpReport, str, str]:
    parsed = SnpReport.parse(report)
    if not any(parsed.chip_id):
        raise AttestationError(
            "the SEV-SNP report masks its chip id (MASK_CHIP_ID), so its VCEK cannot be "
            "looked up; pass the chip's VCEK with the evidence instead"
        )
    return parsed, parsed.chip_id.hex(), parsed.reported_tcb.hex()


def _check_vcek_signed(parsed: SnpReport, cert: Certificate) -> None:
    """Raise AttestationError unless ``cert``'s key made ``parsed``'s signature."""
    try:
        verify_ecdsa_p384_sha384(cert.public_key_der(), parsed.r, parsed.s, parsed.signed_bytes)
    except (AuthenticationError, UsageError):
        raise AttestationError(
            "this VCEK did not sign the SEV-SNP report (a VCEK of another chip or TCB, or "
            "a tampered report)"
        ) from None


def _load_vcek(data: bytes, what: str) -> Certificate:
    if len(data) > MAX_VCEK_SIZE:
        raise UsageError(f"{what} is larger than {MAX_VCEK_SIZE} bytes")
    return Certificate.load(data, what=what)


# ---------------------------------------------------------------------------------------
# Offline bundle
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DcapBundleEntry:
    """The collateral of one SGX/TDX platform; ``collateral`` is dcap-qvl's JSON text
    (kept in canonical form: sorted keys, no spaces)."""

    tee: str
    pck_chain_sha256: str
    collateral: str = field(repr=False)
    expiry: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tee, str) or self.tee not in _DCAP_TEES:
            raise UsageError(f"a DCAP bundle entry is for sgx or tdx, not {self.tee!r}")
        if not isinstance(self.collateral, str):
            raise UsageError("a DCAP bundle entry's collateral is not JSON text")
        if not isinstance(self.pck_chain_sha256, str) or not _HEX64.fullmatch(
            self.pck_chain_sha256
        ):
            raise UsageError(
                "a DCAP bundle entry's pck_chain_sha256 is not 64 lowercase hex digits"
            )
        object.__setattr__(self, "expiry", collateral_expiry(self.collateral))
        # One text per content, so that equal collateral makes equal entries.
        canonical = json.dumps(json.loads(self.collateral), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "collateral", canonical)
        Collateral.load(self.collateral.encode())  # dcap-qvl must accept it too

    @classmethod
    def for_quote(cls, tee: str, quote: bytes, collateral: Collateral | str) -> DcapBundleEntry:
        """The entry that serves ``quote``'s platform with ``collateral``."""
        text = collateral if isinstance(collateral, str) else _collateral_text(collateral)
        return cls(tee=tee, pck_chain_sha256=_dcap_key(tee, quote), collateral=text)

    @property
    def key(self) -> tuple[str, str]:
        return ("dcap", f"{self.tee}-{self.pck_chain_sha256}")

    def to_json(self) -> dict[str, Any]:
        return {
            "tee": self.tee,
            "pck_chain_sha256": self.pck_chain_sha256,
            "collateral": json.loads(self.collateral),
        }


@dataclass(frozen=True)
class SnpBundleEntry:
    """The VCEK (DER) of one SEV-SNP chip at one reported TCB."""

    chip_id: bytes
    reported_tcb: bytes
    vcek: bytes = field(repr=False)
    expiry: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.chip_id) != _CHIP_ID_SIZE or not any(self.chip_id):
            raise UsageError(
                f"an SNP bundle entry's chip_id must be {_CHIP_ID_SIZE} bytes, not all zero"
            )
        if len(self.reported_tcb) != _TCB_SIZE:
            raise UsageError(f"an SNP bundle entry's reported_tcb is not {_TCB_SIZE} bytes")
        cert = _load_vcek(self.vcek, "an SNP bundle entry's VCEK")
        if cert.der != self.vcek:
            raise UsageError("an SNP bundle entry's VCEK is not DER")
        object.__setattr__(self, "expiry", cert.not_after)

    @classmethod
    def for_report(cls, report: bytes, vcek: bytes) -> SnpBundleEntry:
        """The entry that serves ``report``'s chip and TCB with ``vcek`` (DER or PEM).

        The VCEK must have signed the report (so a wrong VCEK never enters a bundle).
        """
        parsed, _chip, _tcb = _snp_key(report)
        cert = _load_vcek(vcek, "VCEK")
        _check_vcek_signed(parsed, cert)
        return cls(chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb, vcek=cert.der)

    @property
    def key(self) -> tuple[str, str]:
        return ("snp", f"{self.chip_id.hex()}-{self.reported_tcb.hex()}")

    def to_json(self) -> dict[str, Any]:
        return {
            "chip_id": self.chip_id.hex(),
            "reported_tcb": self.reported_tcb.hex(),
            "vcek": base64.b64encode(self.vcek).decode(),
        }


BundleEntry = DcapBundleEntry | SnpBundleEntry


def make_bundle(entries: Iterable[BundleEntry]) -> bytes:
    """An offline bundle holding ``entries`` (sorted; two with the same key are an error)."""
    by_key: dict[tuple[str, str], BundleEntry] = {}
    for entry in entries:
        if entry.key in by_key:
            raise UsageError(f"two bundle entries for the same {entry.key[0]} key {entry.key[1]}")
        by_key[entry.key] = entry
    document = {
        "version": BUNDLE_VERSION,
        "dcap": [e.to_json() for k, e in sorted(by_key.items()) if k[0] == "dcap"],
        "snp": [e.to_json() for k, e in sorted(by_key.items()) if k[0] == "snp"],
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _bundle_fields(value: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{what} is not a JSON object")
    if set(value) != keys:
        raise UsageError(f"{what} must have exactly the keys {', '.join(sorted(keys))}")
    return value


def _parse_bundle(data: bytes, where: str) -> list[BundleEntry]:
    if len(data) > MAX_BUNDLE_SIZE:
        raise UsageError(f"offline bundle {where} is larger than {MAX_BUNDLE_SIZE} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"offline bundle {where} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"offline bundle {where} is not a JSON object")
    version = document.get("version")
    if type(version) is not int or version != BUNDLE_VERSION:
        raise UsageError(
            f"offline bundle {where} has version {version!r}; "
            f"this securetf reads version {BUNDLE_VERSION}"
        )
    unknown = set(document) - {"version", "dcap", "snp"}
    if unknown:
        raise UsageError(f"offline bundle {where} has unknown keys: {', '.join(sorted(unknown))}")
    entries: list[BundleEntry] = []
    seen: set[tuple[str, str]] = set()
    for kind in ("dcap", "snp"):
        items = document.get(kind, [])
        if not isinstance(items, list):
            raise UsageError(f"offline bundle {where}: {kind} is not a list")
        for i, item in enumerate(items):
            what = f"offline bundle {where}: {kind}[{i}]"
            try:
                entry = _bundle_entry(kind, item, what)
            except UsageError as exc:
                message = str(exc)
                prefix = "" if message.startswith(what) else f"{what}: "
                raise UsageError(prefix + message) from None
            if entry.key in seen:
                raise UsageError(f"{what} repeats the key of an earlier entry ({entry.key[1]})")
            seen.add(entry.key)
            entries.append(entry)
    return entries


def _bundle_entry(kind: str, item: object, what: str) -> BundleEntry:
    if kind == "dcap":
        fields = _bundle_fields(item, {"tee", "pck_chain_sha256", "collateral"}, what)
        if not isinstance(fields["collateral"], dict):
            raise UsageError(f"{what}: collateral is not a JSON object")
        return DcapBundleEntry(
            tee=fields["tee"],
            pck_chain_sha256=fields["pck_chain_sha256"],
            collateral=json.dumps(fields["collateral"]),
        )
    fields = _bundle_fields(item, {"chip_id", "reported_tcb", "vcek"}, what)
    try:
        chip_id = bytes.fromhex(_str(fields["chip_id"], "chip_id"))
        tcb = bytes.fromhex(_str(fields["reported_tcb"], "reported_tcb"))
        vcek = base64.b64decode(_str(fields["vcek"], "vcek"), validate=True)
    except (ValueError, binascii.Error):
        raise UsageError(f"{what}: chip_id and reported_tcb must be hex, vcek base64") from None
    return SnpBundleEntry(chip_id=chip_id, reported_tcb=tcb, vcek=vcek)


def _str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name} is not a string")
    return value


def read_bundle(path: Path) -> list[BundleEntry]:
    """The entries of the offline bundle at ``path`` (UsageError if it is not a valid one)."""
    return _parse_bundle(read_file(path, "offline bundle"), str(path))


def add_to_bundle(path: Path, entries: Iterable[BundleEntry]) -> None:
    """Add ``entries`` to the bundle at ``path`` (created if missing), replacing any entry
    with the same key; the file is replaced atomically."""
    merged: dict[tuple[str, str], BundleEntry] = {}
    if path.exists():
        merged = {e.key: e for e in read_bundle(path)}
    new: dict[tuple[str, str], BundleEntry] = {}
    for entry in entries:
        if entry.key in new:
            raise UsageError(f"two bundle entries for the same {entry.key[0]} key {entry.key[1]}")
        new[entry.key] = entry
    merged.update(new)
    atomic_write(path, make_bundle(merged.values()))


@dataclass(frozen=True)
class _BundleIndex:
    dcap: dict[tuple[str, str], DcapBundleEntry]
    snp: dict[tuple[str, str], SnpBundleEntry]


# ---------------------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------------------


def _default_fetch_vcek(kds_url: str, report: bytes) -> bytes:
    """``securetf.attestation.kds.fetch_vcek``, imported when first needed."""
    name = "securetf.attestation.kds"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise AttestationError(
            "this securetf has no AMD KDS client (securetf.attestation.kds); "
            "use an offline bundle, or pass the VCEK with the evidence"
        ) from None
    vcek = module.fetch_vcek(kds_url, report)
    if not isinstance(vcek, bytes):
        raise AttestationError("the KDS client returned something that is not bytes")
    return vcek


class _Tried:
    """What a lookup tried, for the error that says nothing valid was found."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.bundle_expired: int | None = None

    def add(self, note: str) -> None:
        self.notes.append(note)


class CollateralSource:
    """Collateral for DCAP quotes and VCEKs for SEV-SNP reports: cache, bundle, service.

    ``pccs_url``: a PCCS (or Intel's PCS) for SGX/TDX; ``kds_url``: AMD's KDS (or a
    caching proxy) for SEV-SNP; ``bundle``: an offline bundle file (module docstring);
    ``cache_dir``: where fetched collateral is kept until it expires. ``fetch_dcap`` and
    ``fetch_vcek`` do the network I/O (defaults: :func:`securetf.attestation.fetch_collateral`
    and ``securetf.attestation.kds.fetch_vcek``). ``test_roots``: Intel-like test roots whose
    quotes (emulated hardware) also get collateral; the verifier decides what they are worth.
    Safe to share between threads.
    """

    def __init__(
        self,
        *,
        pccs_url: str | None = None,
        kds_url: str | None = None,
        bundle: Path | None = None,
        cache_dir: Path | None = None,
        fetch_dcap: DcapFetcher = fetch_collateral,
        fetch_vcek: VcekFetcher | None = None,
        test_roots: Sequence[Certificate] = (),
    ) -> None:
        self.pccs_url = pccs_url or None
        self._test_roots = tuple(test_roots)
        self.kds_url = kds_url or None
        self.bundle = bundle
        self.cache_dir = cache_dir
        self._fetch_dcap = fetch_dcap
        self._fetch_vcek = fetch_vcek or _default_fetch_vcek
        self._lock = threading.Lock()
        self._bundle_memo: tuple[tuple[int, int, int], _BundleIndex] | None = None

    # -- SGX / TDX --------------------------------------------------------------------

    def dcap(self, tee: str, quote: bytes, *, now: int) -> Collateral:
        """Collateral for the ``tee`` (``sgx``/``tdx``) ``quote``, valid after ``now``.

        Raises :class:`AttestationError` saying what was tried when nothing valid is
        available, or when the PCCS fails.
        """
        key = _dcap_key(tee, quote, self._test_roots)
        what = f"this {tee} quote's platform (PCK chain sha256 {key})"
        tried = _Tried()
        path = self._cache_path(f"dcap-{tee}-{key}.json")
        if path is not None:
            parse = _dcap_cache_parser(tee, key)
            hit = self._read_cache(path, parse, now, tried)
            if hit is not None:
                return hit
        index = self._bundle_index()
        if index is not None:
            entry = index.dcap.get((tee, key))
            found = self._bundle_entry(entry, now, tried)
            if found is not None:
                return Collateral.load(found.collateral.encode())
        if self.pccs_url is None:
            tried.add("no PCCS is configured")
            raise AttestationError(self._nothing("collateral", what, tried, _PCCS_HINT))
        collateral, text, expiry = self._fetch_collateral(self.pccs_url, quote, now, tried)
        if path is not None:
            envelope = {
                "version": _CACHE_VERSION,
                "tee": tee,
                "pck_chain_sha256": key,
                "expiry": expiry,
                "collateral": json.loads(text),
            }
            self._write_cache(path, json.dumps(envelope, sort_keys=True).encode())
        return collateral

    def _fetch_collateral(
        self, url: str, quote: bytes, now: int, tried: _Tried
    ) -> tuple[Collateral, str, int]:
        try:
            collateral = self._fetch_dcap(quote, url)
            text = _collateral_text(collateral)
            expiry, part = _earliest(text)
        except (Error, OSError, ValueError) as exc:
            raise AttestationError(
                f"cannot get collateral from the PCCS {url}: {exc}" + self._also_tried(tried)
            ) from None
        if expiry <= now:
            raise AttestationError(
                f"the PCCS {url} returned collateral that expired at {_when(expiry)} ({part}); "
                "the PCCS's own cache is stale: refresh it" + self._also_tried(tried)
            )
        return collateral, text, expiry

    # -- SEV-SNP ----------------------------------------------------------------------

    def vcek(self, report: bytes, *, now: int) -> bytes:
        """The VCEK (DER) of the SEV-SNP ``report``'s chip at its reported TCB, valid after
        ``now``. A VCEK from the KDS is kept only if it made the report's signature."""
        parsed, chip, tcb = _snp_key(report)
        what = f"SEV-SNP chip {chip[:16]}... at reported TCB {tcb}"
        tried = _Tried()
        path = self._cache_path(f"vcek-{chip}-{tcb}.der")
        if path is not None:
            hit = self._read_cache(path, _vcek_cache_entry, now, tried)
            if hit is not None:
                return hit
        index = self._bundle_index()
        if index is not None:
            entry = index.snp.get((chip, tcb))
            found = self._bundle_entry(entry, now, tried)
            if found is not None:
                return found.vcek
        if self.kds_url is None:
            tried.add("no AMD KDS is configured")
            raise AttestationError(self._nothing("VCEK", what, tried, _KDS_HINT))
        url = self.kds_url
        try:
            cert = _load_vcek(self._fetch_vcek(url, report), "the VCEK")
            _check_vcek_signed(parsed, cert)
        except (Error, OSError, ValueError) as exc:
            raise AttestationError(
                f"cannot get the VCEK from the AMD KDS {url}: {exc}" + self._also_tried(tried)
            ) from None
        if cert.not_after <= now:
            raise AttestationError(
                f"the AMD KDS {url} returned a VCEK that expired at {_when(cert.not_after)}"
                + self._also_tried(tried)
            )
        if path is not None:
            self._write_cache(path, cert.der)
        return cert.der

    # -- shared -----------------------------------------------------------------------

    def _cache_path(self, name: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / name

    def _read_cache(
        self, path: Path, parse: Callable[[bytes], tuple[T, int]], now: int, tried: _Tried
    ) -> T | None:
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_CACHE_ENTRY + 1)
            if len(data) > _MAX_CACHE_ENTRY:
                raise UsageError(f"larger than {_MAX_CACHE_ENTRY} bytes")
            value, expiry = parse(data)
        except FileNotFoundError:
            tried.add(f"the cache {self.cache_dir} has no entry")
            return None
        except Exception as exc:  # a cache entry is only an optimisation: never fatal
            warn_loudly(_log, "ignoring unusable collateral cache entry %s: %s", path, exc)
            tried.add(f"the cache entry {path} is unusable (ignored)")
            return None
        if expiry <= now:
            tried.add(f"the cache entry expired at {_when(expiry)}")
            return None
        return value

    def _write_cache(self, path: Path, data: bytes) -> None:
        """Write ``path`` atomically with mode 0600; a failure is logged, never raised."""
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, data, mode=0o600)
        except OSError as exc:
            warn_loudly(_log, "cannot write collateral cache entry %s: %s", path, exc)

    def _bundle_index(self) -> _BundleIndex | None:
        """The bundle's entries by key, re-read whenever the file changes."""
        if self.bundle is None:
            return None
        try:
            st = self.bundle.stat()
        except FileNotFoundError:
            raise UsageError(
                f"the offline bundle {self.bundle} does not exist (see docs/collateral.md)"
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot read the offline bundle {self.bundle}: {exc}") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._bundle_memo is not None and self._bundle_memo[0] == stamp:
                return self._bundle_memo[1]
        entries = read_bundle(self.bundle)
        index = _BundleIndex(
            dcap={
                (e.tee, e.pck_chain_sha256): e for e in entries if isinstance(e, DcapBundleEntry)
            },
            snp={
                (e.chip_id.hex(), e.reported_tcb.hex()): e
                for e in entries
                if isinstance(e, SnpBundleEntry)
            },
        )
        with self._lock:
            self._bundle_memo = (stamp, index)
        return index

    def _bundle_entry(self, entry: E | None, now: int, tried: _Tried) -> E | None:
        if entry is None:
            tried.add(f"the offline bundle {self.bundle} has no entry for it")
            return None
        if entry.expiry <= now:
            tried.bundle_expired = entry.expiry
            tried.add(
                f"the offline bundle {self.bundle} has one that expired at {_when(entry.expiry)}"
            )
            return None
        return entry

    def _also_tried(self, tried: _Tried) -> str:
        return f" (before it: {'; '.join(tried.notes)})" if tried.notes else ""

    def _nothing(self, noun: str, what: str, tried: _Tried, service_hint: str) -> str:
        if self.bundle is None:
            todo = f"{service_hint}, or an offline bundle (docs/collateral.md)"
        elif tried.bundle_expired is not None:
            todo = (
                f"{service_hint}, or refresh the offline bundle at {self.bundle} "
                f"(expired at {_when(tried.bundle_expired)})"
            )
        else:
            todo = f"{service_hint}, or add it to the offline bundle at {self.bundle}"
        return f"no valid {noun} for {what}: {'; '.join(tried.notes)}. To fix: {todo}"


def _dcap_cache_parser(tee: str, key: str) -> Callable[[bytes], tuple[Collateral, int]]:
    def parse(data: bytes) -> tuple[Collateral, int]:
        envelope = json.loads(data)
        if not isinstance(envelope, dict) or envelope.get("version") != _CACHE_VERSION:
            raise UsageError("not a version 1 cache entry")
        if envelope.get("tee") != tee or envelope.get("pck_chain_sha256") != key:
            raise UsageError("the entry is for another platform")
        if not isinstance(envelope.get("collateral"), dict):
            raise UsageError("its collateral is not a JSON object")
        text = json.dumps(envelope["collateral"])
        expiry = collateral_expiry(text)
        if envelope.get("expiry") != expiry:
            raise UsageError("its recorded expiry is not its collateral's")
        return Collateral.load(text.encode()), expiry

    return parse


def _vcek_cache_entry(data: bytes) -> tuple[bytes, int]:
    cert = _load_vcek(data, "cached VCEK")
    if cert.der != data:
        raise UsageError("the cached VCEK is not DER")
    return data, cert.not_after

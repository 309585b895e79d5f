"""CollateralSource: the cache, the offline bundle, then the configured service."""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from securetf._fsutil import atomic_write
from securetf._logutil import warn_loudly
from securetf.attestation.collateral._bundle import (
    DcapBundleEntry,
    SnpBundleEntry,
    _BundleIndex,
    read_bundle,
)
from securetf.attestation.collateral._common import (
    _CACHE_VERSION,
    _KDS_HINT,
    _MAX_CACHE_ENTRY,
    _PCCS_HINT,
    DcapFetcher,
    VcekFetcher,
    _log,
    _when,
)
from securetf.attestation.collateral._expiry import _collateral_text, _earliest, collateral_expiry
from securetf.attestation.collateral._keys import (
    _check_vcek_signed,
    _dcap_key,
    _load_vcek,
    _snp_key,
)
from securetf.attestation.dcap import Collateral, fetch_collateral
from securetf.crypto import Certificate
from securetf.errors import AttestationError, Error, UsageError

# ---------------------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------------------

T = TypeVar("T")
E = TypeVar("E", DcapBundleEntry, SnpBundleEntry)


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

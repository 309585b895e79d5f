"""The offline bundle: one JSON file of collateral for machines without network access."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securetf._fsutil import atomic_write, read_file
from securetf.attestation.collateral._common import (
    _CHIP_ID_SIZE,
    _DCAP_TEES,
    _HEX64,
    _TCB_SIZE,
    BUNDLE_VERSION,
    MAX_BUNDLE_SIZE,
)
from securetf.attestation.collateral._expiry import _collateral_text, collateral_expiry
from securetf.attestation.collateral._keys import (
    _check_vcek_signed,
    _dcap_key,
    _load_vcek,
    _snp_key,
)
from securetf.attestation.dcap import Collateral
from securetf.errors import UsageError

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

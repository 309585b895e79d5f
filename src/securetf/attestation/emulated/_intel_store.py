"""The parts of an emulated Intel PKI, and their files (so separate processes share one PKI).

A directory holds ``<name>.key.pem`` (each private key, PKCS#8 PEM, mode 0600) and
``intel-pki.json`` (everything public: certificates, CRLs, the signed TCB info and QE
identity texts with their signatures, the FMSPC, the validity window and the default PCK
TCB level). The signed texts are stored as signed, never re-signed: ECDSA signatures are
randomized, and a CAS and a PCCS loading the same directory must serve the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from securetf._fsutil import read_file, write_private_file
from securetf.attestation.emulated._intel_certs import Issued, Validity
from securetf.crypto import Certificate
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError

__all__ = ["PkiParts", "load_parts", "save_parts"]

_FILE = "intel-pki.json"
_FORMAT = "securetf emulated Intel PKI v1"


@dataclass(frozen=True)
class PkiParts:
    """Certificates with keys by name, CRLs (DER) by name, signed JSON texts by name."""

    issued: dict[str, Issued]
    crls: dict[str, bytes]
    signed: dict[str, tuple[str, bytes]]
    fmspc: bytes
    validity: Validity
    pck_tcb: str


def save_parts(parts: PkiParts, directory: Path) -> None:
    """Write ``parts`` to ``directory`` (created if missing; existing files are refused)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror}") from exc
    for name, issued in parts.issued.items():
        write_private_file(directory / f"{name}.key.pem", issued.key.to_pem())
    document: dict[str, Any] = {
        "format": _FORMAT,
        "fmspc": parts.fmspc.hex(),
        "not_before": parts.validity.not_before,
        "not_after": parts.validity.not_after,
        "pck_tcb": parts.pck_tcb,
        "certificates": {name: issued.pem for name, issued in parts.issued.items()},
        "crls": {name: der.hex() for name, der in parts.crls.items()},
        "signed": {
            name: {"json": text, "signature": signature.hex()}
            for name, (text, signature) in parts.signed.items()
        },
    }
    write_private_file(directory / _FILE, json.dumps(document, indent=2).encode())


def _issued(directory: Path, name: str, pem: str) -> Issued:
    key_path = directory / f"{name}.key.pem"
    key = EcKey.from_pem(read_file(key_path, "key"), source=str(key_path))
    cert = x509.load_pem_x509_certificate(pem.encode())
    if Certificate(cert).public_key_der() != key.public_der():
        raise ValueError(f"{key_path} is not the key of certificate {name}")
    return Issued(key, cert)


def load_parts(directory: Path) -> PkiParts:
    """Read what :func:`save_parts` wrote; anything missing or malformed is a UsageError."""
    path = directory / _FILE
    document = read_file(path, "emulated Intel PKI")
    try:
        fields = json.loads(document)
        if fields["format"] != _FORMAT:
            raise ValueError(f"its format is {fields['format']!r}, not {_FORMAT!r}")
        return PkiParts(
            issued={
                name: _issued(directory, name, pem) for name, pem in fields["certificates"].items()
            },
            crls={name: bytes.fromhex(text) for name, text in fields["crls"].items()},
            signed={
                name: (entry["json"], bytes.fromhex(entry["signature"]))
                for name, entry in fields["signed"].items()
            },
            fmspc=bytes.fromhex(fields["fmspc"]),
            validity=Validity(int(fields["not_before"]), int(fields["not_after"])),
            pck_tcb=str(fields["pck_tcb"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path} is not an emulated Intel PKI: {exc}") from None

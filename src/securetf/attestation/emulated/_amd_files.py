"""An emulated AMD PKI on disk, so that separate processes (a guest, a KDS, a verifier in
tests or a demo) share one chip and its roots.

Layout of the directory (created 0700)::

    pki.json          product, chip id, TCB, now, days (the format is named inside)
    ark.pem ask.pem   the roots
    vcek.der          the chip's VCEK at its TCB
    crl.der           the ARK's CRL
    ark-key.pem ask-key.pem chip-secret.hex    private, 0600

Loading checks that every key belongs to its certificate, so a directory mixed from two
PKIs fails at once rather than as an unexplained verification error later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from securetf._fsutil import atomic_write, read_file
from securetf.errors import UsageError

__all__ = ["FORMAT", "PkiFiles", "read_pki", "write_pki"]

FORMAT = "securetf-emulated-amd-pki/1"
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class PkiFiles:
    """Everything a saved PKI holds."""

    product: str
    chip_id: bytes
    tcb: Mapping[str, int]
    now: int
    days: int
    ark_key: rsa.RSAPrivateKey
    ask_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate
    vcek: bytes
    crl: bytes
    chip_secret: bytes


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_pki(directory: Path, pki: PkiFiles) -> None:
    """Write ``pki`` to ``directory``: private files 0600, the rest 0644, each atomically."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror}") from None
    private = {
        "ark-key.pem": _private_pem(pki.ark_key),
        "ask-key.pem": _private_pem(pki.ask_key),
        "chip-secret.hex": pki.chip_secret.hex().encode() + b"\n",
    }
    manifest = {
        "format": FORMAT,
        "product": pki.product,
        "chip_id": pki.chip_id.hex(),
        "tcb": dict(pki.tcb),
        "now": pki.now,
        "days": pki.days,
    }
    public = {
        "pki.json": json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n",
        "ark.pem": pki.ark.public_bytes(_PEM),
        "ask.pem": pki.ask.public_bytes(_PEM),
        "vcek.der": pki.vcek,
        "crl.der": pki.crl,
    }
    for name, data in private.items():
        atomic_write(directory / name, data, mode=0o600)
    for name, data in public.items():
        atomic_write(directory / name, data, mode=0o644)


def _key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in ``path``, unvalidated: checking an RSA-4096 key's primes takes half a
    second, and a broken test key only makes its own signatures fail to verify. Its public
    half is compared with its certificate (:func:`_cert`)."""
    data = read_file(path, "test PKI key")
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(f"{path} is not an RSA key")
    return key


def _cert(path: Path, key: rsa.RSAPrivateKey) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(read_file(path, "test PKI certificate"))
    except ValueError as exc:
        raise UsageError(f"{path} is not a PEM certificate") from exc
    if cert.public_key() != key.public_key():
        raise UsageError(f"{path} does not hold the public key of its private key file")
    return cert


def _field(manifest: dict[str, Any], name: str, kind: type, path: Path) -> Any:
    value = manifest.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageError(f"{path}: {name!r} is missing or not a {kind.__name__}")
    return value


def read_pki(directory: Path) -> PkiFiles:
    """The PKI in ``directory``; a :class:`UsageError` naming the file that is wrong."""
    path = directory / "pki.json"
    try:
        manifest = json.loads(read_file(path, "test PKI manifest"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path} is not a saved emulated AMD PKI ({FORMAT})")
    tcb = _field(manifest, "tcb", dict, path)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in tcb.values()):
        raise UsageError(f"{path}: 'tcb' values must be integers")
    secret_path = directory / "chip-secret.hex"
    try:
        chip_id = bytes.fromhex(_field(manifest, "chip_id", str, path))
        chip_secret = bytes.fromhex(read_file(secret_path, "test chip secret").decode().strip())
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{path} or {secret_path} holds bytes that are not hex") from None
    if len(chip_secret) < 32:
        raise UsageError(f"{secret_path} holds {len(chip_secret)} bytes; a chip secret has 48")
    ark_key, ask_key = _key(directory / "ark-key.pem"), _key(directory / "ask-key.pem")
    return PkiFiles(
        product=_field(manifest, "product", str, path),
        chip_id=chip_id,
        tcb=tcb,
        now=_field(manifest, "now", int, path),
        days=_field(manifest, "days", int, path),
        ark_key=ark_key,
        ask_key=ask_key,
        ark=_cert(directory / "ark.pem", ark_key),
        ask=_cert(directory / "ask.pem", ask_key),
        vcek=read_file(directory / "vcek.der", "test VCEK"),
        crl=read_file(directory / "crl.der", "test CRL"),
        chip_secret=chip_secret,
    )

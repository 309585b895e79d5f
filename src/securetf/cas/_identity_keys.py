"""The CAS's identity keys at rest: each sealed under the master key (itself sealed to the
TEE, :mod:`securetf.cas.master_key`), so a copy of the data directory holds none of them.

Whoever holds the TLS key can run a CAS that clients who pinned it accept without
attesting it again; whoever holds the log key can sign a forked log; whoever holds the
audit key can sign audit entries. A file ``identity/<name>.sealed``::

    MAGIC || nonce (12) || AES-256-GCM(HKDF-SHA-256(master key, "", INFO || name), nonce,
                                       PEM, aad = MAGIC || name)

A data directory from before sealing holds the keys as 0600 PEM files: the first start
seals them and removes the plain files. A plain key file beside a sealed one that differs
is refused, never used: whoever can write the data directory does not choose the CAS's key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from securetf._fsutil import atomic_write, fsync_dir, read_file
from securetf.cas.master_key import MasterKey
from securetf.crypto import NONCE_SIZE, AesGcm, random_bytes
from securetf.errors import IntegrityError, UsageError

__all__ = [
    "IDENTITY_DIR",
    "IDENTITY_KEYS",
    "SEALED_SUFFIX",
    "load_or_create_identity_key",
    "read_identity_key",
    "write_identity_key",
]

IDENTITY_DIR = "identity"
#: The private keys of a CAS's identity (``identity/<name>``): TLS, audit, log.
IDENTITY_KEYS = ("tls.key", "audit.key", "log.key")
SEALED_SUFFIX = ".sealed"
MAGIC = b"securetf-cas-key-v1\n"
_INFO = b"securetf-cas-identity-key-v1\x00"
_MAX_SEALED = 64 * 1024


def _aead(master: MasterKey, name: str) -> AesGcm:
    return AesGcm(master.derive(salt=b"", info=_INFO + name.encode()))


def _paths(data_dir: Path, name: str) -> tuple[Path, Path]:
    if name not in IDENTITY_KEYS:
        raise UsageError(f"{name!r} is not a CAS identity key ({', '.join(IDENTITY_KEYS)})")
    ident = data_dir / IDENTITY_DIR
    return ident / f"{name}{SEALED_SUFFIX}", ident / name


def write_identity_key(data_dir: Path, name: str, master: MasterKey, pem: bytes) -> None:
    """Seal ``pem`` as the identity key ``name`` (replacing the one there, atomically)."""
    sealed, _ = _paths(data_dir, name)
    nonce = random_bytes(NONCE_SIZE)
    blob = MAGIC + nonce + _aead(master, name).seal(nonce, pem, MAGIC + name.encode())
    atomic_write(sealed, blob, mode=0o600)


def read_identity_key(data_dir: Path, name: str, master: MasterKey) -> bytes:
    """The identity key ``name`` (PEM), opened with ``master``; :class:`UsageError` that
    says what to do if it is missing, changed, or another CAS's."""
    sealed, _ = _paths(data_dir, name)
    blob = read_file(sealed, "the sealed CAS key")
    head = len(MAGIC) + NONCE_SIZE
    try:
        if len(blob) > _MAX_SEALED or len(blob) < head or not blob.startswith(MAGIC):
            raise IntegrityError("not a sealed CAS key")
        return _aead(master, name).open(blob[len(MAGIC) : head], blob[head:], MAGIC + name.encode())
    except IntegrityError:
        raise UsageError(
            f"the CAS key {sealed} does not open with this CAS's master key: it was changed, "
            "or it is another CAS's. Restore the CAS from a backup with owners' recovery "
            "shares (securetf cas recover)"
        ) from None


def load_or_create_identity_key(
    data_dir: Path, name: str, master: MasterKey, make: Callable[[], bytes]
) -> bytes:
    """The identity key ``name``: opened, or sealed from the plain file of an older data
    directory (then removed), or made by ``make`` and sealed on first start."""
    sealed, plain = _paths(data_dir, name)
    if sealed.exists() or sealed.is_symlink():
        pem = read_identity_key(data_dir, name, master)
        if plain.exists() or plain.is_symlink():
            if _read_private(plain) != pem:
                raise UsageError(
                    f"{plain} differs from the sealed key {sealed}: a key in the clear is "
                    f"never used once the key is sealed. Remove {plain} (and find out who "
                    "wrote it)"
                )
            _remove(plain)  # a first sealing that stopped before removing the plain file
        return pem
    pem = _read_private(plain) if plain.exists() else make()
    write_identity_key(data_dir, name, master, pem)
    if plain.exists():
        _remove(plain)
    return pem


def _read_private(path: Path) -> bytes:
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link; a CAS key file must be a plain file")
    if path.stat().st_mode & 0o077:
        raise UsageError(f"{path} is readable by others; chmod 600 it")
    return read_file(path, "the CAS key file")


def _remove(path: Path) -> None:
    path.unlink()
    fsync_dir(path.parent)

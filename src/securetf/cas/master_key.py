"""The CAS master key: the root under which the store encrypts secrets and CA keys at rest.

The CAS keeps it sealed to its TEE in ``master.sealed`` (:mod:`securetf.cas.sealing`: the
sim platform key, Gramine's MRENCLAVE sealing key), mode 0600 in its data directory. On a
confidential VM, which offers no sealing here, it is the plain file ``master.key`` (32
random bytes, mode 0600) on the VM's encrypted disk; library callers and tests that pass no
sealer use that file too. A data directory from before sealing has ``master.key``: the
first sealed start seals it and removes the plain file.

Owners' recovery keys hold threshold shares of it (:meth:`MasterKey.split`,
:mod:`securetf.cas.recovery`), so a backup can be restored on a new machine.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from Crypto.Protocol.SecretSharing import Shamir

from securetf._fsutil import fsync_dir, write_private_file
from securetf.crypto import hkdf_sha256, random_bytes
from securetf.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from securetf.cas.sealing import KeySealer

__all__ = ["MASTER_KEY_FILE", "MASTER_KEY_SIZE", "SEALED_KEY_FILE", "MasterKey"]

MASTER_KEY_FILE = "master.key"
SEALED_KEY_FILE = "master.sealed"
MASTER_KEY_SIZE = 32
MAX_SEALED_SIZE = 4096
_HALF = 16  # Shamir over GF(2^128) shares 16-byte secrets: the key is shared in two halves


class MasterKey:
    """32 secret bytes. The bytes never leave: callers derive keys from them."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != MASTER_KEY_SIZE:
            raise UsageError(f"a master key is {MASTER_KEY_SIZE} bytes, got {len(key)}")
        self._key = bytes(key)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(random_bytes(MASTER_KEY_SIZE))

    @classmethod
    def load_or_create(cls, data_dir: Path) -> MasterKey:
        """Load ``data_dir/master.key``, creating it (atomically, mode 0600) on first start.

        Refuses a file of the wrong size, a file that group or others may access, a
        symbolic link, or a file owned by another user.
        """
        path = data_dir / MASTER_KEY_FILE
        if not path.exists() and not path.is_symlink():
            _create(data_dir, path, random_bytes(MASTER_KEY_SIZE))
        return cls(_read_checked(path))

    @classmethod
    def load_or_create_sealed(cls, data_dir: Path, sealer: KeySealer | None) -> MasterKey:
        """Unseal ``data_dir/master.sealed``, creating it on first start (or sealing the
        ``master.key`` of an older data directory, then removing that file).

        Without a sealer (a confidential VM): :meth:`load_or_create`.
        """
        if sealer is None:
            return cls.load_or_create(data_dir)
        sealed = data_dir / SEALED_KEY_FILE
        plain = data_dir / MASTER_KEY_FILE
        if sealed.exists() or sealed.is_symlink():
            key = cls._unseal(sealed, sealer)
            if plain.exists() and cls(_read_checked(plain))._key == key._key:
                plain.unlink()  # a migration that stopped before removing the plain file
            return key
        key = cls(_read_checked(plain)) if plain.exists() else cls.generate()
        key.write_sealed(data_dir, sealer)
        if plain.exists():
            plain.unlink()
            fsync_dir(data_dir)
        return cls._unseal(sealed, sealer)  # of two starts at once, the one sealed first

    @classmethod
    def load_existing(cls, data_dir: Path, sealer: KeySealer | None) -> MasterKey:
        """The key of an existing CAS data directory (sealed, or not yet sealed)."""
        sealed = data_dir / SEALED_KEY_FILE
        if sealer is not None and (sealed.exists() or sealed.is_symlink()):
            return cls._unseal(sealed, sealer)
        if (data_dir / MASTER_KEY_FILE).exists():
            return cls(_read_checked(data_dir / MASTER_KEY_FILE))
        raise UsageError(f"{data_dir} holds no CAS master key: is it a CAS data directory?")

    @classmethod
    def _unseal(cls, path: Path, sealer: KeySealer) -> MasterKey:
        try:
            return cls(sealer.unseal(_read_checked(path, max_size=MAX_SEALED_SIZE)))
        except IntegrityError:
            raise UsageError(
                f"cannot unseal the CAS master key {path} with this {sealer.tee} TEE's key: it "
                "was sealed on another machine or by another CAS build, or it is damaged. "
                "Restore the CAS from a backup with owners' recovery shares "
                "(securetf cas recover)"
            ) from None

    def write_sealed(self, data_dir: Path, sealer: KeySealer) -> None:
        """Write ``data_dir/master.sealed`` (mode 0600) unless it exists."""
        _create(data_dir, data_dir / SEALED_KEY_FILE, sealer.seal(self._key))

    def write_plain(self, data_dir: Path) -> None:
        """Write ``data_dir/master.key`` (mode 0600) unless it exists: a confidential VM's
        key file (no sealing there; its disk is encrypted)."""
        _create(data_dir, data_dir / MASTER_KEY_FILE, self._key)

    def split(self, threshold: int, count: int) -> list[tuple[int, bytes]]:
        """``count`` shares (index, 32 bytes), any ``threshold`` of which rebuild the key:
        Shamir's scheme over GF(2^128), once per 16-byte half, at the same indices."""
        if not 1 <= threshold <= count <= 255:
            raise UsageError(
                f"a recovery threshold of {threshold} of {count} keys is impossible "
                "(need 1 <= threshold <= keys <= 255)"
            )
        low = Shamir.split(threshold, count, self._key[:_HALF])
        high = Shamir.split(threshold, count, self._key[_HALF:])
        return [(i, a + b) for (i, a), (j, b) in zip(low, high, strict=True) if i == j]

    @classmethod
    def combine(cls, shares: list[tuple[int, bytes]]) -> MasterKey:
        """The key of ``shares`` (the caller checks that there are enough)."""
        if any(len(share) != MASTER_KEY_SIZE for _, share in shares):
            raise UsageError(f"a recovery share is {MASTER_KEY_SIZE} bytes")
        low = Shamir.combine([(i, s[:_HALF]) for i, s in shares])
        high = Shamir.combine([(i, s[_HALF:]) for i, s in shares])
        return cls(low + high)

    def derive(self, *, salt: bytes, info: bytes) -> bytes:
        """A 32-byte key for one purpose (``info``) and one record (``salt``): HKDF-SHA-256."""
        return hkdf_sha256(self._key, salt=salt, info=info)

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"


def _create(data_dir: Path, path: Path, content: bytes) -> None:
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the CAS data directory {data_dir}: {exc.strerror}"
        ) from exc
    # Written under a private name, then linked into place: a crash leaves no partial key,
    # and of two CAS processes starting at once, exactly one key wins and both use it.
    tmp = data_dir / f".{path.name}.tmp-{os.getpid()}-{random_bytes(4).hex()}"
    write_private_file(tmp, content)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(data_dir)


def _read_checked(path: Path, *, max_size: int | None = None) -> bytes:
    """The bytes of a key file: exactly MASTER_KEY_SIZE of them, or at most ``max_size``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UsageError(
            f"cannot open the CAS master key {path}: {exc.strerror} "
            "(it must be a regular file, not a symbolic link)"
        ) from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"the CAS master key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise UsageError(
                f"the CAS master key {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        if info.st_uid != os.geteuid():
            raise UsageError(
                f"the CAS master key {path} belongs to uid {info.st_uid}, not to the CAS "
                f"user (uid {os.geteuid()})"
            )
        data = f.read((max_size or MASTER_KEY_SIZE) + 1)
    if max_size is not None:
        if len(data) > max_size:
            raise UsageError(f"the sealed CAS master key {path} is too large to be one")
        return data
    if len(data) != MASTER_KEY_SIZE:
        raise UsageError(
            f"the CAS master key {path} holds {info.st_size} bytes instead of {MASTER_KEY_SIZE}: "
            "it is damaged or not a master key; restore it from a backup "
            "(without it the stored secrets cannot be decrypted)"
        )
    return data

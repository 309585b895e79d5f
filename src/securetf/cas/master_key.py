"""The CAS master key: the root under which the store encrypts secrets and CA keys at rest.

Under a real TEE the key is to be sealed to the TEE (future work), so that only the
measured CAS can unseal it. Under the simulation TEE it is a plain file ``master.key``
(32 random bytes, mode 0600) in the CAS data directory: whoever can read that file and the
database can read every secret, which is what "sim protects nothing" means.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from securetf._fsutil import fsync_dir, write_private_file
from securetf.crypto import hkdf_sha256, random_bytes
from securetf.errors import UsageError

__all__ = ["MASTER_KEY_FILE", "MASTER_KEY_SIZE", "MasterKey"]

MASTER_KEY_FILE = "master.key"
MASTER_KEY_SIZE = 32


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
            _create(data_dir, path)
        return cls(_read_checked(path))

    def derive(self, *, salt: bytes, info: bytes) -> bytes:
        """A 32-byte key for one purpose (``info``) and one record (``salt``): HKDF-SHA-256."""
        return hkdf_sha256(self._key, salt=salt, info=info)

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"


def _create(data_dir: Path, path: Path) -> None:
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the CAS data directory {data_dir}: {exc.strerror}"
        ) from exc
    # Written under a private name, then linked into place: a crash leaves no partial key,
    # and of two CAS processes starting at once, exactly one key wins and both use it.
    tmp = data_dir / f".{MASTER_KEY_FILE}.tmp-{os.getpid()}-{random_bytes(4).hex()}"
    write_private_file(tmp, random_bytes(MASTER_KEY_SIZE))
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(data_dir)


def _read_checked(path: Path) -> bytes:
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
        data = f.read(MASTER_KEY_SIZE + 1)
    if len(data) != MASTER_KEY_SIZE:
        raise UsageError(
            f"the CAS master key {path} holds {info.st_size} bytes instead of {MASTER_KEY_SIZE}: "
            "it is damaged or not a master key; restore it from a backup "
            "(without it the stored secrets cannot be decrypted)"
        )
    return data

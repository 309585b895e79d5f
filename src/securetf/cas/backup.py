"""``securetf cas backup`` and ``securetf cas recover``: a consistent, sealed snapshot of a
CAS, and a new CAS made from it with k owners' recovery shares.

A backup file::

    "securetf-cas-backup-v1\\n" || u32 length || header (canonical JSON) || payload
    header  = {format: 1, created_at, database: "sqlite" | "external", salt (hex),
               recovery: the ShareSet (owners' sealed shares, MACed under the master key)}
    payload = AES-256-GCM(HKDF-SHA-256(master key, salt, "securetf-cas-backup-v1"),
                          nonce = 12 zero bytes, files, aad = everything before the payload)
    files   = canonical JSON {relative path: base64}: cas.db (a SQLite online-backup
              snapshot, unless the database is PostgreSQL: see docs/cas.md) and identity/*

Without k owners' shares the payload is ciphertext under a key nobody else has; any changed
byte (header or payload) fails authentication and nothing is restored.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import time
from pathlib import Path

from securetf._fsutil import atomic_write, fsync_dir, read_file
from securetf.cas._identity_keys import IDENTITY_DIR, read_identity_key
from securetf.cas.master_key import MasterKey
from securetf.cas.recovery import RecoveryError, Share, ShareSet
from securetf.cas.sealing import KeySealer
from securetf.crypto import NONCE_SIZE, AesGcm, SigningKey, random_bytes
from securetf.errors import Error, IntegrityError, UsageError
from securetf.policy import canonical_json

__all__ = ["BACKUP_MAGIC", "BackupFile", "recover", "write_backup"]

BACKUP_MAGIC = b"securetf-cas-backup-v1\n"
DB_FILE = "cas.db"
MAX_HEADER = 1 << 20
_INFO = b"securetf-cas-backup-v1"
_NONCE = bytes(NONCE_SIZE)


class BackupFile:
    """A parsed backup: its header (read before anything is decrypted) and its payload."""

    def __init__(self, raw: bytes, where: str) -> None:
        if not raw.startswith(BACKUP_MAGIC) or len(raw) < len(BACKUP_MAGIC) + 4:
            raise UsageError(f"{where} is not a securetf CAS backup")
        start = len(BACKUP_MAGIC) + 4
        (size,) = struct.unpack(">I", raw[len(BACKUP_MAGIC) : start])
        if size > MAX_HEADER or start + size > len(raw):
            raise RecoveryError(f"{where}: the backup is truncated or changed; nothing restored")
        self.aad = raw[: start + size]
        self.payload = raw[start + size :]
        try:
            self.header = json.loads(raw[start : start + size])
            self.shares = ShareSet.from_json(self.header["recovery"], where)
            self.salt = bytes.fromhex(self.header["salt"])
            self.database = str(self.header["database"])
        except (ValueError, KeyError, TypeError, RecursionError, UsageError):
            raise RecoveryError(
                f"{where}: the backup's header is damaged or changed; nothing restored"
            ) from None

    @classmethod
    def load(cls, path: Path) -> BackupFile:
        return cls(read_file(path, "backup"), str(path))

    def files(self, master: MasterKey) -> dict[str, bytes]:
        """The snapshot's files; :class:`RecoveryError` if any byte of the backup changed."""
        try:
            plain = _aead(master, self.salt).open(_NONCE, self.payload, self.aad)
        except IntegrityError:
            raise RecoveryError(
                "the backup fails authentication (a byte of it changed): nothing restored; "
                "use an untampered copy"
            ) from None
        return {name: base64.b64decode(data) for name, data in json.loads(plain).items()}


def _aead(master: MasterKey, salt: bytes) -> AesGcm:
    return AesGcm(master.derive(salt=salt, info=_INFO))


def write_backup(
    data_dir: Path, out: Path, *, master: MasterKey, db_url: str | None = None
) -> BackupFile:
    """Snapshot the CAS in ``data_dir`` (running or not) into ``out`` (mode 0600).

    ``db_url``: the CAS's database when it is not ``data_dir/cas.db``; a PostgreSQL database
    is left out (``database: external``): dump it with ``pg_dump`` (docs/cas.md).
    """
    shares = ShareSet.load(data_dir)
    if shares is None:
        raise UsageError(
            f"the CAS in {data_dir} has no recovery keys, so a backup could never be restored: "
            "start it once with `securetf cas serve --recovery-keys FILE`"
        )
    try:
        shares.verify(master)
    except IntegrityError:
        raise UsageError(
            f"{data_dir}/recovery.json was not made with this CAS's master key: start the CAS "
            "with --recovery-keys again to make new shares"
        ) from None
    files = _identity_files(data_dir)
    database = "external"
    db_path = _sqlite_path(data_dir, db_url)
    if db_path is not None:
        files[DB_FILE] = _sqlite_snapshot(db_path, data_dir)
        database = "sqlite"
    salt = random_bytes(32)
    header = canonical_json(
        {
            "format": 1,
            "created_at": time.time(),
            "database": database,
            "salt": salt.hex(),
            "recovery": shares.to_json(),
        }
    )
    aad = BACKUP_MAGIC + struct.pack(">I", len(header)) + header
    payload = canonical_json({k: base64.b64encode(v).decode() for k, v in sorted(files.items())})
    raw = aad + _aead(master, salt).seal(_NONCE, payload, aad)
    atomic_write(out, raw, mode=0o600)
    return BackupFile(raw, str(out))


def _sqlite_path(data_dir: Path, db_url: str | None) -> Path | None:
    if db_url is None:
        return data_dir / DB_FILE
    if db_url.startswith("sqlite:///"):
        return Path(db_url[len("sqlite:///") :])
    return None


def _identity_files(data_dir: Path) -> dict[str, bytes]:
    ident = data_dir / IDENTITY_DIR
    if not ident.is_dir():
        raise UsageError(f"{data_dir} holds no CAS identity: is it a CAS data directory?")
    return {
        p.relative_to(data_dir).as_posix(): p.read_bytes()
        for p in sorted(ident.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def _sqlite_snapshot(db: Path, data_dir: Path) -> bytes:
    """A consistent copy through SQLite's online backup API (the CAS may keep writing)."""
    if not db.is_file():
        raise UsageError(f"the CAS database {db} does not exist")
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".backup-") as tmp:
        copy = Path(tmp) / DB_FILE
        try:
            src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                dst = sqlite3.connect(copy)
                try:
                    src.backup(dst)
                    dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.Error as exc:
            raise UsageError(f"cannot snapshot the CAS database {db}: {exc}") from None
        return copy.read_bytes()


def recover(
    backup: BackupFile, shares: list[Share], data_dir: Path, *, sealer: KeySealer | None
) -> MasterKey:
    """Make ``data_dir`` (absent or empty) a copy of the backed-up CAS, its master key rebuilt
    from ``shares`` and sealed to this machine's TEE. Nothing is written unless all checks
    pass: too few shares, foreign shares, a changed backup raise :class:`RecoveryError`."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(
            f"{data_dir} is not empty: recover into a new data directory (nothing was changed)"
        )
    # 1. The key from k shares (checked against the MAC it made over the share set).
    master = backup.shares.combine(shares)
    # 2. The payload: authentic under that key, header included.
    files = backup.files(master)
    # 3. Written into a private staging directory, checked, then moved into place.
    parent = data_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{data_dir.name}.recover-"))
    try:
        for name, content in files.items():
            _write_member(staging, name, content)
        backup.shares.save(staging)
        if backup.database == "sqlite":
            _check_database(staging, master)
        if sealer is not None:
            master.write_sealed(staging, sealer)
        else:
            master.write_plain(staging)
        if data_dir.exists():
            data_dir.rmdir()
        os.replace(staging, data_dir)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return master


def _write_member(root: Path, name: str, content: bytes) -> None:
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise RecoveryError(f"the backup names a file outside the data directory: {name!r}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        os.fsync(f.fileno())


def _check_database(root: Path, master: MasterKey) -> None:
    """The restored database must authenticate under the rebuilt key."""
    from securetf.cas.store import open_store  # the store pulls in SQLAlchemy

    # A backup of a data directory from before its keys were sealed holds them in the clear;
    # the recovered CAS seals them at its first start.
    plain = root / IDENTITY_DIR / "audit.key"
    pem = plain.read_bytes() if plain.exists() else read_identity_key(root, "audit.key", master)
    audit = SigningKey.from_pem(pem)
    try:
        open_store(f"sqlite:///{root / DB_FILE}", master_key=master, audit_key=audit).close()
    except Error as exc:
        raise RecoveryError(f"the backed-up database does not authenticate: {exc}") from None

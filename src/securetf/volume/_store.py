"""The sealed directory on (untrusted) storage: objects, the manifest file, the writer lock.

Nothing here decides trust; it moves bytes. Object names are random and say nothing
about the files they hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

from securetf._fsutil import atomic_write, syncfs
from securetf.crypto import TAG_SIZE, random_bytes
from securetf.errors import IntegrityError, NotFoundError, UsageError
from securetf.volume._keys import VolumeKey
from securetf.volume._objects import (
    OBJECT_ID_SIZE,
    SALT_SIZE,
    ChunkCodec,
    FileEntry,
    write_at,
)
from securetf.volume._reader import ObjectSource
from securetf.volume._settings import (
    LOCK_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    OBJECTS_DIR,
    WRITE_BATCH_BYTES,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class NewObject:
    """An object being written: fresh id, fresh salt, so a fresh key.

    Full records of consecutive chunks are gathered in a buffer and written with one
    system call (a sealed stream is one long run of them); anything else is written at once.
    """

    def __init__(self, store: Store) -> None:
        self.object_id = random_bytes(OBJECT_ID_SIZE)
        self.salt = random_bytes(SALT_SIZE)
        self.path = store.object_path(self.object_id)
        self.codec = ChunkCodec(
            store.key, store.volume_id, self.object_id, self.salt, store.chunk_size
        )
        self.path.parent.mkdir(exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._scratch = bytearray(self.codec.record_size)
        # Grown on demand (4 records, doubling up to WRITE_BATCH_BYTES): a volume of many
        # small files must not pay for a large buffer per file.
        self._batch = memoryview(bytearray(0))
        self._batch_first = 0  # chunk index of the first record in the batch
        self._batch_len = 0  # records in the batch
        store.pending.add(self.path)

    def write(self, index: int, last: bool, plaintext: bytes | bytearray | memoryview) -> bytes:
        size = self.codec.record_size
        full = len(plaintext) == self.codec.chunk_size
        if self._batch_len and (not full or index != self._batch_first + self._batch_len):
            self._flush()
        if not full:
            record = memoryview(bytearray(len(plaintext) + TAG_SIZE))
            tag = self.codec.seal_record(index, last, plaintext, record)
            write_at(self._fd, record, index * size)
            return tag
        if (self._batch_len + 1) * size > len(self._batch):
            self._flush()
            records = min(max(4, 2 * len(self._batch) // size), WRITE_BATCH_BYTES // size)
            if records * size > len(self._batch):
                self._batch = memoryview(bytearray(max(records, 1) * size))
        if not self._batch_len:
            self._batch_first = index
        at = self._batch_len * size
        tag = self.codec.seal_record(index, last, plaintext, self._batch[at : at + size])
        self._batch_len += 1
        return tag

    def _flush(self) -> None:
        if self._batch_len:
            size = self.codec.record_size
            write_at(self._fd, self._batch[: self._batch_len * size], self._batch_first * size)
            self._batch_len = 0

    def read_stored(self, index: int, out: memoryview) -> None:
        """Read back a full, non-final chunk this object stored earlier."""
        self._flush()
        c = self.codec.chunk_size
        self.codec.read_chunk(self._fd, index, False, c, self._scratch, out[:c])

    def finish(self, count: int, padded: int) -> None:
        self._flush()
        os.ftruncate(self._fd, padded + count * TAG_SIZE)
        os.close(self._fd)

    def discard(self) -> None:
        self._batch_len = 0
        with contextlib.suppress(OSError):
            os.close(self._fd)
        _remove_object(self.path)


class Store:
    """One sealed directory, bound to a key and (once known) a volume id and chunk size."""

    def __init__(self, root: Path, key: VolumeKey, volume_id: bytes, chunk_size: int) -> None:
        self.root = root
        self.key = key
        self.volume_id = volume_id
        self.chunk_size = chunk_size
        self.pending: set[Path] = set()  # objects written but not yet committed
        self._lock_fd: int | None = None

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def object_path(self, object_id: bytes) -> Path:
        name = object_id.hex()
        return self.root / OBJECTS_DIR / name[:2] / name[2:]

    @staticmethod
    def read_manifest(root: Path) -> bytes:
        """The manifest's bytes; storage cannot make a reader wait on a FIFO or hold more
        than the largest manifest in memory."""
        if not root.is_dir():
            raise NotFoundError(f"no volume at {root} (not a directory)")
        try:
            fd = os.open(root / MANIFEST_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFoundError(
                f"{root} is not a sealed volume (no {MANIFEST_NAME} file); "
                "create one with 'securetf volume seal'"
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot read the manifest of {root}: {exc.strerror}") from exc
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
                raise IntegrityError()
            # One byte more than stat said, so a manifest grown since is seen to be longer.
            return f.read(st.st_size + 1)

    def open_source(self, entry: FileEntry) -> ObjectSource:
        codec = ChunkCodec(self.key, self.volume_id, entry.object_id, entry.salt, self.chunk_size)
        return ObjectSource(self.object_path(entry.object_id), codec, entry.size)

    def lock(self) -> None:
        """Take the single-writer lock, or fail at once."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"volume {self.root} is open for writing by another process; wait for it to end"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def publish(self, manifest_bytes: bytes) -> None:
        """Make written objects durable, then switch the manifest atomically."""
        syncfs(self.root)
        atomic_write(self.manifest_path, manifest_bytes, mode=0o644)
        self.pending.clear()

    def collect_garbage(self, live: set[bytes]) -> None:
        """Remove objects that no committed state references (left by crashes or rewrites).

        Storage may have put links where directories were: the walk holds each directory
        by descriptor, follows no link, and deletes only object-shaped names in it.
        """
        objects = _open_real_dir(self.root / OBJECTS_DIR)
        if objects is not None:
            try:
                for sub in _fan_out_dirs(objects):
                    self._collect_in(objects, sub, live)
            finally:
                os.close(objects)
        for stale in self.root.glob(f".{MANIFEST_NAME}.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def _collect_in(self, objects: int, sub: str, live: set[bytes]) -> None:
        fd = _open_real_dir(sub, objects)
        if fd is None:
            return
        try:
            for name in os.listdir(fd):
                try:
                    oid = bytes.fromhex(sub + name)
                except ValueError:
                    continue
                unused = oid not in live and self.object_path(oid) not in self.pending
                if len(oid) == OBJECT_ID_SIZE and unused:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(sub, dir_fd=objects)  # only once empty

    def discard_pending(self) -> None:
        for path in self.pending:
            _remove_object(path)
        self.pending.clear()


def _open_real_dir(name: str | Path, parent: int | None = None) -> int | None:
    """A descriptor of the directory ``name`` (in ``parent``); None for a link or anything else."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        return None


def _fan_out_dirs(objects: int) -> list[str]:
    """The two-letter fan-out directories (not links) in ``objects``."""
    with os.scandir(objects) as entries:
        return [e.name for e in entries if len(e.name) == 2 and e.is_dir(follow_symlinks=False)]


def _remove_object(path: Path) -> None:
    """Delete an object, and its fan-out directory once that is empty."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()

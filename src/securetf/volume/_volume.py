"""The public face of a sealed volume: open, list, read, write, commit, verify."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, overload

from securetf.crypto import constant_time_equal, random_bytes
from securetf.errors import IntegrityError, NotFoundError, RollbackError, UsageError
from securetf.volume import _manifest, _paths
from securetf.volume._keys import VolumeKey
from securetf.volume._manifest import Manifest
from securetf.volume._objects import FileEntry, root_of
from securetf.volume._reader import VolumeFileReader
from securetf.volume._settings import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    MODE_BITS,
)
from securetf.volume._store import NewObject, Store
from securetf.volume._writer import VolumeFileWriter


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mode: int


@dataclass(frozen=True)
class VerifyReport:
    """What ``Volume.verify`` checked: every byte of every file of this state."""

    tag: str
    version: int
    files: int
    bytes: int


class Volume:
    """A sealed volume opened with its key. Use :meth:`open` or :meth:`create`."""

    def __init__(self, store: Store, manifest: Manifest, tag: str | None, writable: bool) -> None:
        self._store = store
        self._version = manifest.version
        self._files: dict[str, FileEntry] = dict(manifest.files)
        self._dirs: set[str] = set(manifest.dirs)
        self._committed_objects = {e.object_id for e in manifest.files.values()}
        self._committed = (dict(manifest.files), frozenset(manifest.dirs))
        self._tag = tag
        self._writable = writable
        self._writers: set[VolumeFileWriter] = set()
        self._dirty = False
        self._closed = False

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, key: VolumeKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Volume:
        """Start a new, empty, writable volume in ``path`` (which must not exist yet)."""
        if not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE) or chunk_size % 4096:
            raise UsageError(
                f"chunk size must be a multiple of 4096 in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
            )
        path = Path(path)
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            raise UsageError(f"{path} exists already; a new volume needs a new path") from None
        except OSError as exc:
            raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
        (path / "objects").mkdir()
        store = Store(path, key, random_bytes(16), chunk_size)
        store.lock()
        vol = cls(store, Manifest(store.volume_id, chunk_size, 0), None, writable=True)
        vol._dirty = True
        return vol

    @classmethod
    def open(
        cls,
        path: Path,
        key: VolumeKey,
        *,
        writable: bool = False,
        expect_tag: str | None = None,
        min_version: int | None = None,
    ) -> Volume:
        """Open and authenticate the volume's current state.

        ``expect_tag`` and ``min_version`` refuse a state other than the one the caller
        knows (for example a volume rolled back to an older copy).
        """
        path = Path(path)
        data = Store.read_manifest(path)
        tag = _manifest.tag_of(data)
        if expect_tag is not None and not constant_time_equal(tag.encode(), expect_tag.encode()):
            raise RollbackError(
                f"volume {path} is in state {tag}, not the expected {expect_tag}: "
                "it was rolled back, replaced or changed elsewhere"
            )
        manifest = _manifest.decode(data, key)
        if min_version is not None and manifest.version < min_version:
            raise RollbackError(
                f"volume {path} is at version {manifest.version}, older than {min_version}"
            )
        store = Store(path, key, manifest.volume_id, manifest.chunk_size)
        vol = cls(store, manifest, tag, writable)
        if writable:
            store.lock()
            if Store.read_manifest(path) != data:
                store.unlock()
                raise UsageError(f"volume {path} changed while opening; try again")
            store.collect_garbage(vol._committed_objects)
        return vol

    # -- reading ---------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    @property
    def tag(self) -> str | None:
        """The tag of the last committed state (None for a new volume not yet committed)."""
        return self._tag

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def path(self) -> Path:
        return self._store.root

    def files(self) -> list[FileInfo]:
        return [FileInfo(e.path, e.size, e.mode) for _, e in sorted(self._files.items())]

    def directories(self) -> list[str]:
        implied = {p for f in self._files for p in _paths.parents(f)}
        return sorted(self._dirs | implied)

    def stat(self, path: str) -> FileInfo:
        entry = self._entry(path)
        return FileInfo(entry.path, entry.size, entry.mode)

    def exists(self, path: str) -> bool:
        return _paths.normalize(path) in self._files

    @overload
    def open_file(
        self, path: str, mode: Literal["rb"] = "rb", *, file_mode: int = 0o644
    ) -> VolumeFileReader: ...

    @overload
    def open_file(
        self, path: str, mode: Literal["wb", "r+b", "ab"], *, file_mode: int = 0o644
    ) -> VolumeFileWriter: ...

    def open_file(
        self, path: str, mode: str = "rb", *, file_mode: int = 0o644
    ) -> VolumeFileReader | VolumeFileWriter:
        """Open a file inside the volume: "rb"; or, writable volumes only, "wb", "r+b", "ab"."""
        self._check_open()
        if mode == "rb":
            entry = self._entry(path)
            return VolumeFileReader(self._store.open_source(entry), entry)
        if mode not in ("wb", "r+b", "ab"):
            raise UsageError(f"unsupported mode {mode!r}: use rb, wb, r+b or ab")
        self._check_writable()
        norm = _paths.normalize(path)
        if norm in self._dirs:
            raise UsageError(f"{norm} is a directory")
        old = self._files.get(norm)
        if old is None and mode == "r+b":
            raise NotFoundError(f"no file {norm} in the volume")
        base = self._store.open_source(old) if old and mode != "wb" else None
        writer: VolumeFileWriter

        def on_close(entry: FileEntry | None) -> None:
            self._writers.discard(writer)
            if entry is not None:
                self._files[norm] = entry
                self._dirty = True

        writer = VolumeFileWriter(
            norm,
            base=base,
            new_object=lambda: NewObject(self._store),
            on_close=on_close,
            mode=old.mode if old else file_mode & MODE_BITS,
            append=mode == "ab",
        )
        self._writers.add(writer)
        return writer

    # -- changing ----------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        self._check_writable()
        norm = _paths.normalize(path)
        if norm in self._files:
            raise UsageError(f"{norm} is a file")
        self._dirs.add(norm)
        self._dirty = True

    def rmdir(self, path: str) -> None:
        """Forget an empty directory (one kept only by ``mkdir``; parents of files are implied)."""
        self._check_writable()
        norm = _paths.normalize(path)
        inside = norm + "/"
        if any(p.startswith(inside) for p in (*self._files, *self._dirs)):
            raise UsageError(f"directory {norm} is not empty")
        if norm not in self._dirs:
            raise NotFoundError(f"no directory {norm} in the volume")
        self._dirs.discard(norm)
        self._dirty = True

    def remove(self, path: str) -> None:
        self._check_writable()
        del self._files[self._entry(path).path]
        self._dirty = True

    def rename(self, old: str, new: str) -> None:
        self._check_writable()
        entry = self._entry(old)
        norm = _paths.normalize(new)
        if norm in self._dirs:
            raise UsageError(f"{norm} is a directory")
        del self._files[entry.path]
        self._files[norm] = FileEntry(
            norm, entry.object_id, entry.salt, entry.size, entry.mode, entry.root
        )
        self._dirty = True

    def chmod(self, path: str, mode: int) -> None:
        self._check_writable()
        e = self._entry(path)
        self._files[e.path] = FileEntry(
            e.path, e.object_id, e.salt, e.size, mode & MODE_BITS, e.root
        )
        self._dirty = True

    def commit(self) -> str:
        """Atomically publish the current state as version+1; return its tag.

        A crash at any moment leaves the previous state or this one, and both verify.
        """
        self._check_writable()
        if self._writers:
            raise UsageError("close every file opened for writing before committing")
        if not self._dirty and self._tag is not None:
            return self._tag
        manifest = Manifest(
            self._store.volume_id,
            self._store.chunk_size,
            self._version + 1,
            dict(self._files),
            frozenset(self._dirs),
        )
        data = _manifest.encode(manifest, self._store.key)
        self._store.publish(data)
        self._version, self._tag, self._dirty = manifest.version, _manifest.tag_of(data), False
        self._committed_objects = {e.object_id for e in self._files.values()}
        self._committed = (dict(self._files), frozenset(self._dirs))
        self._store.collect_garbage(self._committed_objects)
        return self._tag

    def revert(self, *, keep: Collection[str] = ()) -> bool:
        """Drop every change since the last commit but those to the files ``keep`` names.

        Each kept file has its current content, or its committed one (or stays absent)
        when it is no longer a file, or when the state it would join could not hold it (a
        file where the committed state has a directory or a parent file, or content shared
        with another file, as after a rename). Every file must be closed. Returns whether
        the state now differs from the last commit: whether a commit has anything to do.
        """
        self._check_writable()
        if self._writers:
            raise UsageError("close every file opened for writing before reverting")
        files, dirs = dict(self._committed[0]), set(self._committed[1])
        for path in keep:
            norm = _paths.normalize(path)
            entry = self._files.get(norm)
            if entry is None:
                continue
            others = {e.object_id for p, e in files.items() if p != norm}
            candidate = files | {norm: entry}
            try:
                _paths.check_tree(sorted(candidate), sorted(dirs))
            except UsageError:
                continue
            if entry.object_id not in others:
                files = candidate
        self._files, self._dirs = files, dirs
        self._dirty = (files, frozenset(dirs)) != self._committed
        return self._dirty

    # -- verifying ---------------------------------------------------------------------
    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Authenticate every chunk of every file and its integrity root; raise on any failure.

        ``progress(n)`` is called as each chunk's ``n`` bytes of content are checked.
        """
        if self._tag is None or self._dirty:
            raise UsageError("commit the volume before verifying it")
        total = 0
        size = self._store.chunk_size
        scratch = bytearray(size)
        for entry in self._files.values():
            source = self._store.open_source(entry)  # refuses an object of the wrong length
            tags = []
            try:
                for i in range(source.count):
                    tags.append(source.read_into(i, memoryview(scratch)))
                    if progress is not None:
                        progress(max(0, min(size, entry.size - i * size)))
            finally:
                source.close()
            if not constant_time_equal(root_of(tags), entry.root):
                raise IntegrityError()
            total += entry.size
        return VerifyReport(self._tag, self._version, len(self._files), total)

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the volume. Uncommitted changes are dropped (storage keeps the last commit)."""
        if self._closed:
            return
        for writer in list(self._writers):
            writer.abort()
        self._writers.clear()
        if self._writable:
            self._store.discard_pending()
            self._store.unlock()
        self._closed = True

    def __enter__(self) -> Volume:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _entry(self, path: str) -> FileEntry:
        norm = _paths.normalize(path)
        try:
            return self._files[norm]
        except KeyError:
            raise NotFoundError(f"no file {norm} in volume {self._store.root}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the volume is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise UsageError("the volume was opened read-only; open it with writable=True")

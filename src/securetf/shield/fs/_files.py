"""Open files of a mounted volume: shared writers per path, readers per handle.

Every handle that writes one path shares one :class:`VolumeFileWriter`; the file's new
content enters the volume's state when the last such handle is released (or when the
mount commits). A writer can be *parked* (closed into the state) and is reopened on the
next write, which is how rename, chmod and commit deal with files still open.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field

from securetf.volume import Volume, VolumeFileReader, VolumeFileWriter


@dataclass
class OpenFile:
    """One path open for writing by ``refs`` handles."""

    path: str
    writer: VolumeFileWriter | None
    refs: int = 0
    unlinked: bool = False

    def writer_in(self, volume: Volume) -> VolumeFileWriter:
        if self.writer is None:
            self.writer = volume.open_file(self.path, "r+b")
        return self.writer

    def size(self) -> int | None:
        return None if self.writer is None else self.writer.seek(0, io.SEEK_END)

    def park(self) -> None:
        """Hand what was written to the volume's state (or drop it, once unlinked)."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if self.unlinked:
            writer.abort()
        else:
            writer.close()

    def abort(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.abort()


@dataclass
class Handle:
    """What one ``open`` returned: a reader, or a share of the path's writer."""

    path: str
    reader: VolumeFileReader | None = None
    shared: OpenFile | None = None


@dataclass
class OpenFiles:
    """The handle table and the per-path writers."""

    handles: dict[int, Handle] = field(default_factory=dict)
    writing: dict[str, OpenFile] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_reader(self, path: str, reader: VolumeFileReader) -> int:
        return self._add(Handle(path, reader=reader))

    def add_writer(self, path: str, writer: VolumeFileWriter | None) -> int:
        shared = self.writing.get(path)
        if shared is None:
            shared = self.writing[path] = OpenFile(path, writer)
        elif writer is not None:  # a truncating open replaces the content being written
            shared.abort()
            shared.writer = writer
        shared.refs += 1
        return self._add(Handle(path, shared=shared))

    def _add(self, handle: Handle) -> int:
        fh = next(self._ids)
        self.handles[fh] = handle
        return fh

    def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        if handle.reader is not None:
            handle.reader.close()
        shared = handle.shared
        if shared is not None:
            shared.refs -= 1
            if shared.refs == 0:
                if self.writing.get(shared.path) is shared:
                    del self.writing[shared.path]
                shared.park()

    def under(self, path: str) -> list[OpenFile]:
        """Files open for writing at ``path`` or below it."""
        inside = path + "/"
        return [f for p, f in self.writing.items() if p == path or p.startswith(inside)]

    def move(self, old: str, new: str) -> None:
        """Follow a rename: every handle and writer at ``old`` (or below) now lives at ``new``."""
        inside = old + "/"
        items: list[Handle | OpenFile] = [*self.handles.values(), *self.writing.values()]
        for item in items:
            if item.path == old or item.path.startswith(inside):
                item.path = new + item.path[len(old) :]
        self.writing = {f.path: f for f in self.writing.values()}

    def forget(self, path: str) -> None:
        """``path`` was unlinked or replaced: its open writer, if any, is dropped at release."""
        shared = self.writing.pop(path, None)
        if shared is not None:
            shared.unlinked = True

    def park_all(self) -> None:
        for shared in self.writing.values():
            shared.park()

    def close_all(self) -> None:
        """The mount is gone: drop unreleased writers, close readers."""
        for handle in self.handles.values():
            if handle.reader is not None:
                handle.reader.close()
            if handle.shared is not None:
                handle.shared.abort()
        self.handles.clear()
        self.writing.clear()

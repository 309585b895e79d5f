"""The program's standard output and error, where the policy's ``output`` says.

``operator``: the runtime's own (the operator reads them). ``none``: the program's own
``/dev/null``, which its init opens in the program's view. ``sealed``: one pipe for both
streams (so they stay in the order the program wrote them, as on a terminal); the runtime
reads it and appends what it reads to the file on the volume's mount in its private
mount namespace, through the file system shield. The plaintext goes from the pipe to the
shield's encryption in the runtime's memory, never into a file of the host; the program
holds only the pipe's write end, no handle to anything outside its view.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from pathlib import Path

from pydantic import ConfigDict, TypeAdapter, ValidationError

from securetf.errors import AttestationError, UsageError
from securetf.policy import Output, SealedOutput
from securetf.protocol import ServiceConfig

log = logging.getLogger("securetf.runtime")

#: Bytes read from the pipe at a time (the kernel's pipe holds 64 KiB).
READ_BYTES = 64 * 1024
#: How often the reader looks whether the program has ended, in milliseconds.
POLL_MS = 200
#: How long the reader may take, once the program has ended, to write what it still holds.
DRAIN_SECONDS = 30.0
#: The log's mode inside the volume (the program owns every file of its volumes).
LOG_MODE = 0o600

_OUTPUT: TypeAdapter[Output] = TypeAdapter(Output, config=ConfigDict(defer_build=True))


def output_of(config: ServiceConfig) -> Output:
    """The policy's ``output`` as the CAS configured it; a sealed one must name a volume
    the service mounts read-write (the CAS checked the policy; the runtime does not rely
    on it)."""
    try:
        output = _OUTPUT.validate_python(config.output)
    except ValidationError:
        raise AttestationError(
            "the CAS configured an output this runtime does not know; run the securetf "
            "version the CAS runs"
        ) from None
    if isinstance(output, SealedOutput):
        grant = config.volumes.get(output.volume)
        if grant is None or grant.mode != "rw" or grant.code:
            raise AttestationError(
                f"the CAS configured the output into volume {output.volume!r}, which the "
                "service does not mount read-write"
            )
    return output


class SealedLog:
    """The program's output appended to a file of a mounted read-write volume.

    :meth:`open` opens the file and the pipe, and starts the reader; :attr:`write_end` is
    for the program (``launch`` closes the runtime's copy); :meth:`finish` waits for the
    end of the output and closes the file, before the volume is unmounted.
    """

    def __init__(self, file_fd: int, where: str) -> None:
        self._file = file_fd
        self._where = where
        self._read_end, self.write_end = os.pipe()  # neither inherited by other children
        self._ended = threading.Event()
        self._failed = False
        self.written = 0
        self._thread = threading.Thread(target=self._copy, name="securetf-output", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, mountpoint: Path, output: SealedOutput) -> SealedLog:
        """Open (create) the file at ``output.path`` below ``mountpoint``, for appending."""
        target = mountpoint / output.path
        try:
            for parent in reversed(target.relative_to(mountpoint).parents[:-1]):
                with contextlib.suppress(FileExistsError):
                    (mountpoint / parent).mkdir()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(target, flags, LOG_MODE)
        except OSError as exc:
            raise UsageError(
                f"cannot open the program's output {output.sealed}: {exc.strerror}; the "
                "policy's output must name a file the volume can hold (not a directory, "
                "nor below a file); the program was not started"
            ) from None
        return cls(fd, output.sealed)

    def _copy(self) -> None:
        poller = select.poll()
        poller.register(self._read_end, select.POLLIN)
        deadline: float | None = None
        try:
            while True:
                ready = poller.poll(POLL_MS)
                if self._ended.is_set():
                    # The program's namespace is gone, and with it every writer: what is
                    # left is in the pipe. Only a writer outside it could keep it open.
                    deadline = deadline or time.monotonic() + DRAIN_SECONDS
                    if not ready or time.monotonic() > deadline:
                        break
                if not ready:
                    continue
                data = os.read(self._read_end, READ_BYTES)
                if not data:
                    break
                self._append(data)
        except Exception:  # never a traceback, which could hold bytes of the output
            log.error("reading the program's output failed; the rest of it is lost")
        finally:
            os.close(self._read_end)

    def _append(self, data: bytes) -> None:
        if self._failed:
            return  # discarded: the program must not block on a full pipe
        view = memoryview(data)
        try:
            while view:
                done = os.write(self._file, view)
                view = view[done:]
                self.written += done
        except OSError as exc:
            self._failed = True
            log.error(
                "cannot append the program's output to %s (%s) after %d bytes; the rest "
                "of it is discarded",
                self._where,
                exc.strerror,
                self.written,
            )

    def finish(self) -> None:
        """The program has ended: write what the pipe still holds, close the file."""
        if self._file < 0:
            return
        self._ended.set()
        self._thread.join(DRAIN_SECONDS + POLL_MS / 1000)
        if self._thread.is_alive():
            log.error("the program's output did not end; what it still holds is lost")
            return  # its file stays open until the unmount ends the reader's write
        with contextlib.suppress(OSError):
            os.close(self._file)
        self._file = -1

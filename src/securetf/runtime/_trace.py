"""``--trace-writes``: the program runs under strace, whose report only the runtime reads.

The program's init starts ``strace`` (from the system's directories, in the program's
view) instead of ``setpriv``; strace starts ``setpriv`` and the program, and prints each
failed call of :data:`._writes.WRITE_CALLS` into a pipe whose write end only the init
holds (strace opens it as ``/proc/1/fd/N``; the program cannot open the init's
descriptors), and whose read end only the runtime holds. A thread here reads it while the
program runs and keeps what :class:`._writes.RefusedWrites` takes from it.

Why strace cannot give the program any power, and what it costs: docs/runtime.md, "Tracing
refused writes".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Collection
from pathlib import Path

from securetf.errors import UsageError
from securetf.runtime._launch import SYSTEM_PATH
from securetf.runtime._view import View
from securetf.runtime._writes import MAX_LINE_BYTES, WRITE_CALLS, RefusedWrites

#: Seconds the runtime waits, after the program's init exited, for the rest of the trace
#: (the tracer dies with the init, so the pipe closes at once).
DRAIN_SECONDS = 10.0
#: Bytes read from the pipe at a time.
_CHUNK = 64 * 1024


def find_strace() -> str:
    """``strace`` from the system's directories (checked before the run starts)."""
    found = shutil.which("strace", path=SYSTEM_PATH)
    if found is None:
        raise UsageError(
            "--trace-writes needs strace in the system's directories: install it "
            "(apt-get install strace), or run without --trace-writes"
        )
    return found


def strace(view: View) -> str:
    """``strace`` from the system's directories, which the program's view shows too."""
    found = find_strace()
    if view.host_path(found) != Path(found):
        raise UsageError(f"strace ({found}) is not in the program's view")
    return found


def strace_arguments(exe: str, output: str) -> list[str]:
    """``strace``'s command line up to the traced command.

    ``-DD``: the tracer is a grandchild in a process group of its own, so the init's child
    stays the program (its signals and exit status are the program's) and a signal to the
    program's group never reaches the tracer. ``-f``: every process the program starts.
    ``-Z``: failed calls only. ``-y``: directories of descriptors named, so a relative path
    resolves. ``--seccomp-bpf``: the program stops only at the traced calls. ``-qqq``, no
    signals: nothing but the calls in the output. ``?``: a call this architecture lacks
    (``open`` on arm64) is skipped.
    """
    calls = ",".join(f"?{name}" for name in WRITE_CALLS)
    return [
        exe,
        "-DD",
        "-f",
        "-Z",
        "-y",
        "--seccomp-bpf",
        "-qqq",
        "-e",
        "signal=none",
        "-e",
        f"trace={calls}",
        "-o",
        output,
        "--",
    ]


class WriteTrace:
    """The pipe strace writes to and the thread that reads it, for one run."""

    def __init__(self, private: Collection[str]) -> None:
        self.refused = RefusedWrites(private)
        self._read, self.write_fd = os.pipe()
        self._thread = threading.Thread(target=self._drain, name="securetf-trace", daemon=True)
        self._started = False

    def command(self, view: View) -> list[str]:
        """strace's command line, up to the traced command. It writes to the init's copy
        of the pipe (the init is PID 1 and keeps the same descriptor number)."""
        return strace_arguments(strace(view), f"/proc/1/fd/{self.write_fd}")

    def handed_over(self) -> None:
        """The init holds the write end now (or never will): drop the runtime's copy and
        read until every writer has gone."""
        with contextlib.suppress(OSError):
            os.close(self.write_fd)
        if not self._started:
            self._started = True
            self._thread.start()

    def finish(self) -> RefusedWrites:
        """What the trace held, once the init (and with it the tracer) exited."""
        if self._started:
            self._thread.join(DRAIN_SECONDS)
        else:  # the program never started: nothing was written
            for fd in (self.write_fd, self._read):
                with contextlib.suppress(OSError):
                    os.close(fd)
        return self.refused

    def _drain(self) -> None:
        pending, skipping = b"", False
        try:
            while chunk := os.read(self._read, _CHUNK):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not skipping:
                        self.refused.add(line)
                    skipping = False
                if len(pending) > MAX_LINE_BYTES:
                    # No path is that long: the line is skipped up to its end.
                    pending, skipping = b"", True
            if pending and not skipping:
                self.refused.add(pending)
        except OSError:
            pass  # what was read is what the report says
        finally:
            os.close(self._read)

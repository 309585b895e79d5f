"""Starting the program: in its root, in a PID namespace of its own, as its own
unprivileged user, without capabilities.

The runtime starts :mod:`._enter` (the program's init) with its own interpreter, hands it
the root, working directory, argv and environment over a pipe (never on a command line
the host can read), and waits for it to report that it entered the root before it
forwards signals. The init's exit code is the program's. With a :class:`._trace.WriteTrace`
the init starts strace, which starts ``setpriv`` and the program.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from securetf.errors import UsageError
from securetf.policy import User
from securetf.runtime import _linux
from securetf.runtime._view import View

if TYPE_CHECKING:
    from securetf.runtime._trace import WriteTrace

#: No capability, now or after any ``execve`` (no set-user-ID either): the program cannot
#: leave or change its network namespace, mount, trace the runtime or load modules, so the
#: confinement the runtime set up holds even against a program that would undo it.
#: ``setpriv`` is util-linux's.
DROP_CAPABILITIES = (
    "--no-new-privs",
    "--bounding-set=-all",
    "--inh-caps=-all",
    "--ambient-caps=-all",
)


def setpriv_arguments(user: User) -> list[str]:
    """``setpriv``'s options: the program's uid and gid, no supplementary groups (root's
    would stay), no capabilities. Changing from uid 0 to another clears the permitted and
    effective sets; the bounding set empty, no ``execve`` brings one back."""
    return [
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        *DROP_CAPABILITIES,
        "--",
    ]


#: Where the runtime looks for its own helpers: the system's directories, never the
#: operator's PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: Most bytes of the init's report (``ok`` or what failed).
_STATUS_MAX = 4096


ProgramOutput = Literal["operator", "none"] | int
"""The program's standard output and error: the runtime's own (``operator``), its own
``/dev/null`` (``none``), or a descriptor (a pipe's write end) that :func:`launch` hands
to the program and closes in the runtime."""


@dataclass(frozen=True)
class Program:
    root: Path
    """The runtime's path of the program's root (a mount point)."""
    cwd: str
    """The working directory, in the program's view."""
    argv: Sequence[str]
    """The command, ``argv[0]`` resolved in the view (as measured)."""
    env: Mapping[str, str]
    user: User
    """Who the program runs as."""
    output: ProgramOutput = "operator"


def setpriv(view: View) -> str:
    """``setpriv`` from the system's directories, which the program's view shows too."""
    found = shutil.which("setpriv", path=SYSTEM_PATH)
    if found is None:
        raise UsageError(
            "securetf run needs setpriv to drop the program's capabilities: install util-linux"
        )
    if view.host_path(found) != Path(found):
        raise UsageError(f"setpriv ({found}) is not in the program's view")
    return found


def _init_source() -> str:
    return Path(__file__).with_name("_enter.py").read_text()


def _start(program: Program, argv: list[str], trace: WriteTrace | None) -> subprocess.Popen[bytes]:
    config_r, config_w = os.pipe()
    status_r, status_w = os.pipe()
    trace_fd = [trace.write_fd] if trace is not None else []
    output = [program.output] if isinstance(program.output, int) else []
    try:
        # The first process this thread starts is PID 1 of the program's PID namespace.
        with _linux.new_pid_namespace():
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _init_source(), str(config_r), str(status_w)],
                pass_fds=(config_r, status_w, *trace_fd, *output),
                env={},
            )
    except OSError as exc:
        for fd in (config_r, config_w, status_r, status_w):
            os.close(fd)
        raise UsageError(f"cannot start the program's init: {exc.strerror}") from exc
    finally:
        if trace is not None:
            trace.handed_over()
    os.close(config_r)
    os.close(status_w)
    config = {
        "root": str(program.root),
        "cwd": program.cwd,
        "argv": argv,
        "env": dict(program.env),
        "trace_fd": trace_fd[0] if trace_fd else None,
        "output": program.output,
    }
    with os.fdopen(config_w, "wb") as out, contextlib.suppress(BrokenPipeError):
        out.write(json.dumps(config).encode())
    with os.fdopen(status_r, "rb") as report:
        status = report.read(_STATUS_MAX).decode(errors="replace")
    if status != "ok":
        proc.kill()
        proc.wait()
        raise UsageError(
            "cannot start the program in its own root: "
            + (status or "its init failed (its error is above)")
        )
    return proc


def launch(
    program: Program,
    view: View,
    namespace: AbstractContextManager[None] | None = None,
    *,
    trace: WriteTrace | None = None,
) -> int:
    """Run the program (in ``namespace``, the network shield's), under ``trace`` if given;
    forward SIGINT and SIGTERM; return its exit code (128+N if killed by signal N)."""
    try:
        argv = [setpriv(view), *setpriv_arguments(program.user), *program.argv]
        if trace is not None:
            argv = [*trace.command(view), *argv]
        with namespace if namespace is not None else contextlib.nullcontext():
            proc = _start(program, argv, trace)
    finally:
        if isinstance(program.output, int):
            os.close(program.output)  # the program's now: its end is the output's end
    previous = {
        sig: signal.signal(sig, lambda s, _f: proc.send_signal(s))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code

"""The program's init: PID 1 of its PID namespace, which moves into the program's root.

The runtime starts this file's source with its own interpreter (``python -I -S -c``), in
the program's network namespace and as the first process of a new PID namespace, with two
descriptors as its arguments. It reads its instructions (JSON) from the first, and then:

1. makes itself a mount namespace of its own (a copy of the runtime's private one) and
   pivots into the root the runtime built, detaching everything else: the host's tree is
   not hidden below the program's root, it is gone from its namespace;
2. mounts ``/proc`` (this PID namespace's processes only) and ``sysfs``, both without
   write access to the kernel's settings;
3. gives up every capability but CAP_KILL (to forward signals to the program), and
   bounds what any process it starts can hold to what ``setpriv`` needs to make the
   program its user (and, under ``--trace-writes``, what strace needs to trace it): no
   process of the PID namespace can mount, reach the host's files or change the network;
4. reports ``ok`` (or what failed) on the second descriptor;
5. starts the program, through ``setpriv`` that makes it the policy's unprivileged user
   and drops every capability, with the environment the runtime gave (under
   ``--trace-writes`` through strace, which writes to the init's descriptor the runtime
   passed, never inherited by the program), and its standard output and error where the
   policy's ``output`` says (the init's own stay the runtime's, for the init's errors);
   forwards the signals it receives; reaps
   orphans; and exits with the program's status (128+N when killed by signal N). When
   PID 1 exits, the kernel kills whatever the program left running.

Standard library only: it runs before any site directory is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_PTRACE = 5, 6, 7, 8, 19
LINUX_CAPABILITY_VERSION_3 = 0x20080522
#: What the init keeps: signals to the program (another uid).
INIT_CAPABILITIES = (CAP_KILL,)
#: What a process the init starts may hold: setpriv sets the uid, gid and groups and drops
#: the bounding set; strace (--trace-writes) reads the program's memory and descriptors.
START_CAPABILITIES = (CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP)
TRACE_CAPABILITIES = (CAP_SYS_PTRACE,)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
#: /proc entries the program may read but never write (the kernel's settings and triggers).
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")

_libc = ctypes.CDLL(None, use_errno=True)


class EnterError(Exception):
    pass


def _call(result: int, what: str) -> None:
    if result != 0:
        raise EnterError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _call(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            None,
        ),
        f"mount {target}",
    )


def _pivot(root: str) -> None:
    """Make ``root`` this namespace's root and detach the old one."""
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise EnterError(f"pivot_root: unknown system call number on {platform.machine()}")
    # pivot_root(".", "."): the old root ends up on top of the new one, then goes.
    _call(_libc.syscall(number, b".", b"."), "pivot_root")
    _call(_libc.umount2(b".", MNT_DETACH), "detaching the host's root")
    os.chdir("/")


def _kernel_interfaces() -> None:
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter(root: str, cwd: str) -> None:
    _call(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _pivot(root)
    _kernel_interfaces()
    os.chdir(cwd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def confine(*, tracing: bool) -> None:
    """Keep :data:`INIT_CAPABILITIES`; bound the processes started to the start set.

    A process the init starts runs as root (uid 0) with the bounding set as its
    capabilities. So even strace, which runs as root beside the program, or a process that
    took over the init, holds nothing that reaches outside the program's namespaces.
    """
    keep = set(START_CAPABILITIES) | (set(TRACE_CAPABILITIES) if tracing else set())
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in keep:
            _call(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    _call(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient")
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for cap in INIT_CAPABILITIES:
        data[cap // 32].effective |= 1 << (cap % 32)
        data[cap // 32].permitted |= 1 << (cap % 32)
    _call(_libc.capset(ctypes.byref(header), data), "capset")


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _redirect(output: str | int) -> int:
    """Standard output and error to ``output`` (``operator``: left as they are); returns
    a descriptor of the init's own standard error, for its own errors."""
    own = os.dup(2)  # not inherited by the program
    if output != "operator":
        target = os.open("/dev/null", os.O_WRONLY) if output == "none" else int(output)
        os.dup2(target, 1)
        os.dup2(target, 2)
        if target > 2:
            os.close(target)
    return own


def supervise(argv: list[str], env: dict[str, str], output: str | int = "operator") -> int:
    """Start the program; forward signals to it; reap every process; its exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        for sig in (*FORWARDED, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        own = 2
        try:
            own = _redirect(output)
            os.execve(argv[0], argv, env)  # noqa: S606 - setpriv, then the policy's command
        except OSError as exc:
            os.write(own, f"securetf: cannot start {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    if isinstance(output, int):
        os.close(output)  # the program's alone: the output ends when the program does

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has exited; waitpid tells
            os.kill(child, sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return _exit_code(status)


def main() -> None:
    # Should the runtime die, so does this namespace and everything in it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    config_fd, status_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(config_fd, "rb") as f:
        config = json.loads(f.read())
    trace_fd = config.get("trace_fd")
    if trace_fd is not None:
        # strace opens it as /proc/1/fd/N; no process the init starts inherits it.
        os.set_inheritable(trace_fd, False)
    try:
        enter(config["root"], config["cwd"])
        confine(tracing=trace_fd is not None)
    except (EnterError, OSError) as exc:
        os.write(status_fd, str(exc).encode(errors="replace"))
        sys.exit(125)
    os.write(status_fd, b"ok")
    os.close(status_fd)
    os._exit(supervise(config["argv"], config["env"], config["output"]))


if __name__ == "__main__":
    main()

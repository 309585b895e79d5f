"""The program's network namespace: created, entered for a moment, and left, per thread.

``setns`` and ``unshare`` move only the calling thread, so the runtime stays in the host's
namespace while one of its threads creates a socket inside the program's (a socket keeps
the namespace it was created in) or starts the program there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

from securetf._libc import load_libc
from securetf.shield.net._errors import NetShieldError

CLONE_NEWNET = 0x40000000
_THREAD_NS = "/proc/thread-self/ns/net"
_libc = load_libc()


def _call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise NetShieldError(f"{what} failed: {os.strerror(err)} (the network shield needs root)")


def check_tools() -> None:
    """Root, and the ``ip`` and ``nft`` programs (Debian: iproute2, nftables)."""
    if os.geteuid() != 0:
        raise NetShieldError("the network shield needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise NetShieldError(
                f"the network shield needs the {tool!r} program; install Debian's {package}"
            )


@contextlib.contextmanager
def inside(netns: int) -> Iterator[None]:
    """Run the block's system calls (and children it starts) in ``netns``, this thread only."""
    home = os.open(_THREAD_NS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _call(_libc.setns(netns, CLONE_NEWNET), "entering the program's network namespace")
        try:
            yield
        finally:
            # Failing to come back would leave this thread in the wrong namespace for good.
            _call(_libc.setns(home, CLONE_NEWNET), "returning to the runtime's network namespace")
    finally:
        os.close(home)


def create() -> int:
    """A new network namespace with only loopback, up; returns a descriptor that keeps it."""
    home = os.open(_THREAD_NS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _call(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            netns = os.open(_THREAD_NS, os.O_RDONLY | os.O_CLOEXEC)
        finally:
            _call(_libc.setns(home, CLONE_NEWNET), "returning to the runtime's network namespace")
    finally:
        os.close(home)
    try:
        run_inside(netns, ["ip", "link", "set", "lo", "up"])
    except BaseException:
        os.close(netns)
        raise
    return netns


def allow_low_ports(netns: int) -> None:
    """Let the program bind ports below 1024 in its namespace without CAP_NET_BIND_SERVICE.

    The runtime drops every capability of the program; in a namespace where only the
    program listens, a low port grants nothing over anyone else.
    """
    with inside(netns), open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as f:
        f.write("0")


def run_inside(netns: int, argv: list[str], stdin: bytes | None = None) -> None:
    with inside(netns):
        done = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        raise NetShieldError(f"{' '.join(argv[:3])} failed in the program's namespace: {detail}")


def socket_inside(netns: int, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that belongs to ``netns``.

    The tunnels turn Nagle off on every socket they use (``_relay.tune``): with it on, a
    small write to the program waited for its delayed ACK, 40 ms in many of TensorFlow's
    collective steps.
    """
    with inside(netns):
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setblocking(False)
    return sock

"""The compiled data path: ``securetf-relay`` carries the bytes, the runtime decides.

The runtime accepts and opens every TCP connection itself, as the Python tunnel does, and
hands the sockets to one relay process (relay.c, built by ``make setup``) over a
``SOCK_SEQPACKET`` control socket. For a tunnel the relay does the TLS 1.3 handshake (the
instance certificate, the policy's CA only, the expected instance's DNS name, no SNI) and
reports the verified peer certificate on the tunnel's own control socket; it carries
nothing until the runtime has checked the name, the service, the CAS's liveness answer
and the port, and handed over the program's socket. Every byte after that is copied in C.
See docs/net-shield.md and docs/adr/0017.
"""

from __future__ import annotations

import array
import contextlib
import logging
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

from securetf.crypto import Certificate
from securetf.errors import UsageError
from securetf.shield.net._errors import NetShieldError, PeerRefusedError
from securetf.shield.net._liveness import PeerLiveness
from securetf.shield.net._plan import Plan, Route
from securetf.shield.net._relay import abort, tune
from securetf.shield.net._settings import Timing
from securetf.shield.net._tls import Identity
from securetf.shield.net._tunnel import Carry, Tunnels

log = logging.getLogger("securetf.shield.net")
#: Built from relay.c beside it by ``make setup``; part of the runtime, never looked up
#: on PATH or by a setting the operator could point elsewhere.
RELAY_BINARY = Path(__file__).with_name("securetf-relay")
_READY_SECONDS = 10.0
#: How much longer than the relay's own handshake deadline the runtime waits for its report.
_REPORT_MARGIN = 5.0
_MAX_REPORT = 65536
_PORT = struct.Struct("!H")


class TlsRefused(ssl.SSLError):
    """The relay's TLS handshake failed: another CA, name or no certificate (not retried)."""


def _fds(*socks: socket.socket) -> list[tuple[int, int, bytes]]:
    fds = array.array("i", [s.fileno() for s in socks]).tobytes()
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]


class Handshake:
    """One tunnel's control socket: the relay's report, then the runtime's verdict."""

    def __init__(self, ctl: socket.socket, timeout: float) -> None:
        self._ctl = ctl
        self._timeout = timeout

    def report(self) -> tuple[int, bytes]:
        """The port an inbound peer asked for (0 outbound) and the peer's verified
        certificate, DER; raise TlsRefused (refused by TLS) or OSError (not reached)."""
        self._ctl.settimeout(self._timeout + _REPORT_MARGIN)
        message = self._ctl.recv(_MAX_REPORT)
        if message[:1] == b"C" and len(message) > 3:
            (port,) = _PORT.unpack(message[1:3])
            return int(port), message[3:]
        text = message[1:].decode(errors="replace") or "the relay ended the tunnel"
        if message[:1] == b"T":
            raise TlsRefused(text)
        raise ConnectionResetError(text)

    def allow(self, program: socket.socket, port: int) -> None:
        """Carry: the program's connection goes to the relay (outbound: ``port`` first)."""
        try:
            self._ctl.sendmsg([b"Y" + _PORT.pack(port)], _fds(program))
        finally:
            self._ctl.close()

    def deny(self) -> None:
        with contextlib.suppress(OSError):
            self._ctl.send(b"N")
        self._ctl.close()


class NativeRelay:
    """The relay process, started with the instance's certificate, key and CA files.

    The files are those the runtime itself loads (in its private in-memory root, for
    ``securetf run``); the relay reads them once, at start, and writes nothing.
    """

    def __init__(self, identity: Identity) -> None:
        if not RELAY_BINARY.is_file():
            raise NetShieldError(
                f"the network shield's relay {RELAY_BINARY} is missing: `make setup` builds it "
                "(it needs gcc and libssl-dev)"
            )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        self._lock = threading.Lock()
        argv = [
            str(RELAY_BINARY),
            str(identity.certificate),
            str(identity.key),
            str(identity.ca),
            str(theirs.fileno()),
        ]
        try:
            # Its rare messages (a certificate it cannot load) go to the runtime's stderr.
            keep = [theirs.fileno()]
            self._proc = subprocess.Popen(argv, pass_fds=keep, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        ours.settimeout(_READY_SECONDS)
        try:
            ready = ours.recv(1)
        except OSError:
            ready = b""
        if ready != b"R":
            self.stop()
            raise NetShieldError(
                f"the network shield's relay did not start (exit {self._proc.returncode}; "
                "its reason is on stderr)"
            )
        ours.settimeout(None)

    @property
    def pid(self) -> int:
        """The relay's process id."""
        return self._proc.pid

    def _send(self, header: bytes, *socks: socket.socket) -> None:
        with self._lock:
            self._control.sendmsg([header], _fds(*socks))

    def tunnel(self, peer: socket.socket, timeout: float, *, name: str | None) -> Handshake:
        """Hand a connected peer socket over for TLS: a client expecting DNS ``name``, or
        (``name`` None) a server. The caller keeps its copy of ``peer`` until it decides."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        head = (b"o" if name else b"i") + struct.pack("!I", int(timeout * 1000))
        try:
            self._send(head + (name or "").encode(), theirs, peer)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        return Handshake(ours, timeout)

    def plain(self, a: socket.socket, b: socket.socket) -> None:
        """Copy both ways between two plain connections; the caller closes its copies."""
        self._send(b"p", a, b)

    def stop(self) -> None:
        """End the relay and every connection it carries."""
        self._control.close()  # the relay exits when its control socket ends
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()


def _closed(*socks: socket.socket) -> None:
    """Close the runtime's copies of sockets the relay now holds (no reset: it carries)."""
    for sock in socks:
        sock.close()


class NativeTunnels(Tunnels):
    """Tunnels whose bytes the relay carries; every decision stays in :class:`Tunnels`."""

    def __init__(
        self,
        plan: Plan,
        identity: Identity,
        netns: int,
        timing: Timing,
        liveness: PeerLiveness,
        *,
        relay: NativeRelay,
    ) -> None:
        super().__init__(plan, identity, netns, timing, liveness)
        self._relay = relay

    def _secure(self, raw: socket.socket, route: Route) -> Carry:
        handshake = self._relay.tunnel(raw, self.timing.handshake, name=self.server_name(route))
        try:
            _, der = handshake.report()
            self.check_server(route, _peer_form(der), der)
        except BaseException:
            handshake.deny()
            raise

        def carry(sock: socket.socket) -> None:
            try:
                handshake.allow(sock, route.port)
            except OSError as exc:
                log.warning("the relay did not take the tunnel to %s: %s", route.name, exc)
                self.drop(raw)
                abort(sock)
                return
            self.untrack(raw)
            _closed(raw, sock)

        return carry

    def server_name(self, route: Route) -> str:
        """The DNS name the relay requires in the server's certificate (never sent)."""
        return f"{route.name}.{self.plan.policy}"

    def inbound(self, sock: socket.socket) -> None:
        source = sock.getpeername()
        tune(sock, self.timing)
        try:
            handshake = self._relay.tunnel(sock, self.timing.handshake, name=None)
        except OSError as exc:
            log.warning("the relay did not take a connection from %s: %s", source, exc)
            abort(sock)
            return
        try:
            port, der = handshake.report()
            service = self.check_client(_peer_form(der), der)
        except (OSError, ssl.SSLError, PeerRefusedError) as exc:
            log.warning("refused a connection from %s: %r", source, exc)
            handshake.deny()
            abort(sock)
            return
        program = self.program_for(service, source, port)
        if program is None:
            handshake.deny()
            abort(sock)
            return
        try:
            handshake.allow(program, 0)
        except OSError as exc:
            log.warning("the relay did not take the tunnel from %s: %s", source, exc)
            self.drop(program)
            abort(sock)
            return
        self.untrack(program)
        _closed(program, sock)

    def plain(self, accepted: socket.socket, opened: socket.socket) -> None:
        try:
            self._relay.plain(accepted, opened)
        except OSError as exc:
            log.warning("the relay did not take a plain connection: %s", exc)
            self.drop(opened)
            abort(accepted)
            return
        self.untrack(opened)
        _closed(accepted, opened)


def _peer_form(der: bytes) -> dict[str, tuple[tuple[object, ...], ...]]:
    """The relay's verified certificate, read as ``getpeercert()`` shows one."""
    try:
        return Certificate.load(der, what="the peer's certificate").peer_form()
    except UsageError as exc:
        raise PeerRefusedError(str(exc)) from None

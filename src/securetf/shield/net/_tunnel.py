"""The two halves of the tunnel: the program's redirected connections out, peers' in.

Each accepted connection is handled in its own thread (see _relay.py for why threads).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from securetf.shield.net._errors import PeerRefusedError
from securetf.shield.net._identity import peer_service, require_instance
from securetf.shield.net._liveness import PeerLiveness, require_live
from securetf.shield.net._netns import socket_inside
from securetf.shield.net._nft import original_destination
from securetf.shield.net._plan import Plan, Route
from securetf.shield.net._relay import LINGER_ABORT, Plain, Tls, abort, relay, tune
from securetf.shield.net._settings import Timing
from securetf.shield.net._tls import Identity, client_context, server_context

log = logging.getLogger("securetf.shield.net")
#: After the handshake the client names the listen port it wants, inside TLS.
_HEADER = struct.Struct("!H")
#: Public ports are reached at the namespace's 127.0.0.1, where a server bound to loopback
#: (``securetf serve``'s default) or to every address both answer.
_PROGRAM_LOOPBACK = "127.0.0.1"
#: Carries the program's connection (given) through a checked tunnel, until it ends.
Carry = Callable[[socket.socket], None]


class _Backoff:
    """Waits between attempts, doubling up to ``retry_max``, until ``connect_patience``."""

    def __init__(self, timing: Timing) -> None:
        self._deadline = time.monotonic() + timing.connect_patience
        self._delay, self._max = timing.retry_first, timing.retry_max

    def wait(self) -> bool:
        """Sleep before the next attempt; False (at once) if it would end past patience."""
        if time.monotonic() + self._delay > self._deadline:
            return False
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, self._max)
        return True


class Tunnels:
    def __init__(
        self,
        plan: Plan,
        identity: Identity,
        netns: int,
        timing: Timing,
        liveness: PeerLiveness,
    ) -> None:
        self.plan, self.netns, self.timing = plan, netns, timing
        self._liveness = liveness
        self._client = client_context(identity)
        self._server = server_context(identity)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = False

    # -- bookkeeping, so that stop() ends every tunnel ----------------------------------------

    def track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closing:
                return False
            self._open.add(sock)
            return True

    def untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)

    def close_all(self) -> None:
        """Abort every tunnel and refuse new ones (the program has ended)."""
        with self._lock:
            self._closing = True
            socks, self._open = list(self._open), set()
        for sock in socks:  # the threads that use them wake up, abort and close them
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
                sock.shutdown(socket.SHUT_RDWR)

    def handle(self, handler: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
        """``handler`` for one accepted socket, with the socket tracked and closed at the end."""

        def run(sock: socket.socket) -> None:
            if not self.track(sock):
                abort(sock)
                return
            try:
                handler(sock)
            except Exception:  # a tunnel's failure must never end the runtime
                log.exception("tunnel failed")
                abort(sock)
            finally:
                self.untrack(sock)

        return run

    # -- out: the program connected to a peer's virtual address ------------------------------

    def outbound(self, sock: socket.socket) -> None:
        try:
            destination = original_destination(sock)
        except OSError:
            abort(sock)
            return
        route = self.plan.routes.get(destination)
        if route is None or route.endpoint is None:
            log.warning("refused: the program connected to %s:%d, no peer there", *destination)
            abort(sock)
            return
        tune(sock)
        carry = self._dial(route)
        if carry is None:
            abort(sock)
            return
        carry(sock)

    def _dial(self, route: Route) -> Carry | None:
        """mTLS to the peer's runtime, retried while it is unreachable; None if it never is."""
        if route.endpoint is None:
            return None
        backoff = _Backoff(self.timing)
        where = (route.endpoint.host, route.endpoint.port)
        while True:
            try:
                raw = socket.create_connection(where, timeout=self.timing.handshake)
            except OSError as exc:
                if not backoff.wait():
                    log.warning("peer %s at %s unreachable: %s", route.name, route.endpoint, exc)
                    return None
                continue
            if not self.track(raw):
                abort(raw)
                return None
            tune(raw, self.timing)
            try:
                return self._secure(raw, route)
            except (ssl.SSLError, PeerRefusedError) as exc:  # an answer, but not the peer's
                log.warning("refused peer %s at %s: %s", route.name, route.endpoint, exc)
                self.drop(raw)
                return None
            except OSError as exc:  # reset or timed out mid-handshake: never reached the peer
                self.drop(raw)
                if not backoff.wait():
                    log.warning("peer %s at %s unreachable: %s", route.name, route.endpoint, exc)
                    return None
                continue

    def _secure(self, raw: socket.socket, route: Route) -> Carry:
        """The handshake and every check on a connection to ``route``'s runtime; then how
        the program's connection is carried. Raises ssl.SSLError or PeerRefusedError for a
        refused peer, OSError for one not reached."""
        peer = Tls(raw, self._client, server_side=False)  # no server name: no SNI
        peer.handshake(self.timing.handshake)
        self.check_server(route, peer.peercert(), peer.peer_der())
        peer.sendall(memoryview(_HEADER.pack(route.port)))

        def carry(sock: socket.socket) -> None:
            try:
                relay(Plain(sock), peer)
            finally:
                self.untrack(raw)

        return carry

    def check_server(self, route: Route, cert: Mapping[str, Any], der: bytes) -> None:
        """The server is ``route``'s instance, of its service, and the CAS vouches for it."""
        policy = self.plan.policy
        if peer_service(cert, policy=policy, allowed=[route.service]) != route.service:
            raise PeerRefusedError(f"{route.name} answered for another service")
        require_instance(cert, policy=policy, name=route.name)
        require_live(self._liveness, der)

    def check_client(self, cert: Mapping[str, Any], der: bytes) -> str:
        """A client's service, if it is one of the peers and the CAS vouches for it."""
        service = peer_service(cert, policy=self.plan.policy, allowed=self.plan.allowed)
        require_live(self._liveness, der)
        return service

    def drop(self, sock: socket.socket) -> None:
        self.untrack(sock)
        abort(sock)

    # -- egress: an exception of the policy, carried as plain TCP -----------------------------

    def egress(self, sock: socket.socket) -> None:
        try:
            host, port = original_destination(sock)
        except OSError:
            abort(sock)
            return
        if not self.plan.allows_egress(host, port):
            log.warning("refused: egress to %s:%d is not in the policy", host, port)
            abort(sock)
            return
        try:
            outside = socket.create_connection((host, port), timeout=self.timing.handshake)
        except OSError as exc:
            log.info("egress to %s:%d failed: %s", host, port, exc)
            abort(sock)
            return
        if not self.track(outside):
            abort(outside)
            abort(sock)
            return
        tune(sock)
        tune(outside)
        self.plain(sock, outside)

    def plain(self, accepted: socket.socket, opened: socket.socket) -> None:
        """Copy both ways between two plain connections (``opened`` is tracked)."""
        try:
            relay(Plain(accepted), Plain(opened))
        finally:
            self.untrack(opened)

    # -- public: anyone may connect; the program's own TLS protects what it says ---------------

    def public(self, port: int) -> Callable[[socket.socket], None]:
        """The handler for the host's side of public ``port``: bytes as they are, both ways."""

        def forward(sock: socket.socket) -> None:
            tune(sock)
            program = self.into_program(port, address=_PROGRAM_LOOPBACK)
            if program is None:
                log.info("public port %d: the program never accepted", port)
                abort(sock)
                return
            self.plain(sock, program)

        return forward

    # -- in: a peer's runtime connected to this one --------------------------------------------

    def inbound(self, sock: socket.socket) -> None:
        source = sock.getpeername()
        tune(sock, self.timing)
        peer = Tls(sock, self._server, server_side=True)
        try:
            peer.handshake(self.timing.handshake)
            service = self.check_client(peer.peercert(), peer.peer_der())
            port = self._read_header(peer)
        except (OSError, ssl.SSLError, PeerRefusedError) as exc:
            log.warning("refused a connection from %s: %r", source, exc)
            abort(sock)
            return
        program = self.program_for(service, source, port)
        if program is None:
            abort(sock)
            return
        try:
            relay(Plain(program), peer)
        finally:
            self.untrack(program)

    def program_for(self, service: str, source: object, port: int) -> socket.socket | None:
        """A connection to the program's listen ``port`` (tracked), for a checked peer."""
        if port not in self.plan.listen:
            log.warning("refused %s from %s: port %d is not a listen port", service, source, port)
            return None
        program = self.into_program(port)
        if program is None:
            log.info("%s from %s: the program never accepted on port %d", service, source, port)
        return program

    def _read_header(self, peer: Tls) -> int:
        header = memoryview(bytearray(_HEADER.size))
        peer.sock.settimeout(self.timing.handshake)
        try:
            got = 0
            while got < _HEADER.size:
                count = peer.recv_into(header[got:])
                if not count:
                    raise ConnectionResetError("closed before naming a port")
                got += count
        finally:
            peer.sock.settimeout(None)
        (port,) = _HEADER.unpack(header)
        return int(port)

    def into_program(self, port: int, address: str | None = None) -> socket.socket | None:
        """Connect to the program's port, retried while it is not listening yet."""
        backoff = _Backoff(self.timing)
        while True:
            sock = socket_inside(self.netns)
            sock.settimeout(self.timing.handshake)
            try:
                sock.connect((address or self.plan.own_address, port))
            except OSError:
                sock.close()
                if not backoff.wait():
                    return None
                continue
            if not self.track(sock):
                abort(sock)
                return None
            tune(sock)
            return sock

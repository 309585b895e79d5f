"""The network shield's life: namespace, rules, tunnels up; the program; everything down."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

from securetf.shield.net import _netns, _nft
from securetf.shield.net._errors import NetShieldError
from securetf.shield.net._liveness import PeerLiveness
from securetf.shield.net._native import NativeRelay, NativeTunnels
from securetf.shield.net._plan import Plan
from securetf.shield.net._settings import DATA_PATHS, DEFAULT_DATA_PATH, Timing
from securetf.shield.net._tls import Identity
from securetf.shield.net._tunnel import Tunnels

log = logging.getLogger("securetf.shield.net")
_JOIN_SECONDS = 5.0
_Handler = Callable[[socket.socket], None]


class NetShield:
    """Use as a context manager; start the program inside :meth:`program_namespace`.

    While it is up, the program's namespace has only loopback, its peers' virtual addresses
    lead to the runtime, and the runtime's tunnel port accepts only the policy's peers.
    ``liveness`` asks the CAS whether a peer's certificate is still live; it is mandatory,
    and a tunnel whose peer it does not vouch for (or cannot ask about) carries nothing.
    """

    def __init__(
        self,
        plan: Plan,
        identity: Identity,
        *,
        liveness: PeerLiveness,
        timing: Timing | None = None,
        data_path: str = DEFAULT_DATA_PATH,
    ) -> None:
        if data_path not in DATA_PATHS:
            raise NetShieldError(f"data path {data_path!r} is not one of {', '.join(DATA_PATHS)}")
        self.plan = plan
        self.data_path = data_path
        self._relay: NativeRelay | None = None
        self._identity = identity
        self._liveness = liveness
        self._timing = timing or Timing()
        self._netns: int | None = None
        self._tunnels: Tunnels | None = None
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> NetShield:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        _netns.check_tools()
        try:
            self._netns = _netns.create()
            args = (self.plan, self._identity, self._netns, self._timing, self._liveness)
            tunnels: Tunnels
            if self.data_path == "native":
                self._relay = NativeRelay(self._identity)
                self._tunnels = tunnels = NativeTunnels(*args, relay=self._relay)
            else:
                self._tunnels = tunnels = Tunnels(*args)
            port = self._serve(self._listen_inside(), tunnels.outbound)
            families = {net.version for net, _ in self.plan.egress}
            egress = self._serve(self._listen_inside(), tunnels.egress) if 4 in families else None
            egress6 = (
                self._serve(self._listen_inside(socket.AF_INET6), tunnels.egress)
                if 6 in families
                else None
            )
            if self.plan.inbound is not None:
                where = self.plan.inbound
                self._serve(self._listen_outside(where.host, where.port, "peers"), tunnels.inbound)
            for public in self.plan.public:
                listener = self._listen_outside(self.plan.public_host, public, "clients")
                self._serve(listener, tunnels.public(public))
            _netns.allow_low_ports(self._netns)
            rules = _nft.ruleset(
                port,
                self.plan.routes,
                egress_to=egress,
                egress6_to=egress6,
                egress=self.plan.egress,
            )
            _nft.apply(self._netns, rules, routes=[net for net, _ in self.plan.egress])
        except BaseException:
            self.stop()
            raise
        log.info(
            "network shield up (%s data path): %s at %s, %d peer route(s), tunnels in at %s, "
            "public %s",
            self.data_path,
            self.plan.service,
            self.plan.own_address,
            len(self.plan.routes),
            self.plan.inbound or "(none)",
            ", ".join(f"{self.plan.public_host}:{p}" for p in self.plan.public) or "(none)",
        )

    def _listen_inside(self, family: int = socket.AF_INET) -> socket.socket:
        """A listener on the namespace's loopback, for connections the rules redirect."""
        if self._netns is None:
            raise NetShieldError("the network shield has no namespace")
        listener = _netns.socket_inside(self._netns, family)
        self._listeners.append(listener)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return listener

    def _listen_outside(self, host: str, port: int, who: str) -> socket.socket:
        """A port on the host: the runtime's tunnel port for peers, or a public port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listeners.append(listener)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            raise NetShieldError(f"cannot accept {who} at {where}: {exc.strerror}") from exc
        return listener

    def _serve(self, listener: socket.socket, handler: _Handler) -> int:
        """Accept on ``listener`` in a thread, each connection in a thread; return its port."""
        if self._tunnels is None:
            raise NetShieldError("the network shield is not up")
        listener.setblocking(True)
        listener.listen(socket.SOMAXCONN)
        run = self._tunnels.handle(handler)

        def accept() -> None:
            while True:
                try:
                    sock, _ = listener.accept()
                except OSError:  # closed by stop()
                    return
                threading.Thread(target=run, args=(sock,), name="securetf-net", daemon=True).start()

        thread = threading.Thread(target=accept, name="securetf-net-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return int(listener.getsockname()[1])

    @contextlib.contextmanager
    def program_namespace(self) -> Iterator[None]:
        """Processes started in this block (from this thread) run in the program's namespace."""
        if self._netns is None:
            raise NetShieldError("the network shield is not up")
        with _netns.inside(self._netns):
            yield

    def tf_config(self) -> str:
        return self.plan.tf_config()

    def stop(self) -> None:
        """Close every tunnel and listener; the namespace goes with its last process."""
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
        self._listeners.clear()
        if self._tunnels is not None:
            self._tunnels.close_all()
        for thread in self._threads:
            thread.join(_JOIN_SECONDS)
        self._threads.clear()
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None

"""The network shield's life: namespace, rules, tunnels up; the program; everything down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType

from securetf.shield.net import _netns, _nft
from securetf.shield.net._errors import NetShieldError
from securetf.shield.net._plan import Plan
from securetf.shield.net._relay import WINDOW
from securetf.shield.net._settings import Timing
from securetf.shield.net._tls import Identity
from securetf.shield.net._tunnel import Tunnels

log = logging.getLogger("securetf.shield.net")
_START_SECONDS = 30.0
_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class NetShield:
    """Use as a context manager; start the program inside :meth:`program_namespace`.

    While it is up, the program's namespace has only loopback, its peers' virtual addresses
    lead to the runtime, and the runtime's tunnel port accepts only the policy's peers.
    """

    def __init__(self, plan: Plan, identity: Identity, *, timing: Timing | None = None) -> None:
        self.plan = plan
        self._identity = identity
        self._timing = timing or Timing()
        self._netns: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []

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
            tunnels = Tunnels(self.plan, self._identity, self._netns, self._timing)
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="securetf-net-shield", daemon=True
            )
            self._thread.start()
            port, egress = asyncio.run_coroutine_threadsafe(
                self._serve(tunnels), self._loop
            ).result(_START_SECONDS)
            rules = _nft.ruleset(port, self.plan.routes, egress_to=egress, egress=self.plan.egress)
            _nft.apply(self._netns, rules, routes=[net for net, _ in self.plan.egress])
        except BaseException:
            self.stop()
            raise
        log.info(
            "network shield up: %s at %s, %d peer route(s), tunnels in at %s",
            self.plan.service,
            self.plan.own_address,
            len(self.plan.routes),
            self.plan.inbound or "(none)",
        )

    async def _listen_inside(self, handler: _Handler) -> int:
        """A listener on the namespace's loopback, for connections the rules redirect."""
        if self._netns is None:
            raise NetShieldError("the network shield has no namespace")
        listener = _netns.socket_inside(self._netns)
        listener.bind(("127.0.0.1", 0))
        listener.listen(socket.SOMAXCONN)
        self._servers.append(await asyncio.start_server(handler, sock=listener, limit=WINDOW))
        return int(listener.getsockname()[1])

    async def _serve(self, tunnels: Tunnels) -> tuple[int, int | None]:
        """Start the listeners; return the ports of the tunnel and of the egress listener."""
        port = await self._listen_inside(tunnels.outbound)
        egress = await self._listen_inside(tunnels.egress) if self.plan.egress else None
        if self.plan.inbound is not None:
            where = self.plan.inbound
            try:
                server = await asyncio.start_server(
                    tunnels.inbound, where.host, where.port, limit=WINDOW, reuse_address=True
                )
            except OSError as exc:
                raise NetShieldError(f"cannot accept peers at {where}: {exc.strerror}") from exc
            self._servers.append(server)
        return port, egress

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
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_START_SECONDS)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_SECONDS)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

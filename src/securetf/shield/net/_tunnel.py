"""The two halves of the tunnel: the program's redirected connections out, peers' in."""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct

from securetf.shield.net._errors import PeerRefusedError
from securetf.shield.net._identity import peer_service
from securetf.shield.net._netns import socket_inside
from securetf.shield.net._nft import original_destination
from securetf.shield.net._plan import Plan, Route
from securetf.shield.net._relay import WINDOW, Stream, close, splice, tune
from securetf.shield.net._settings import Timing
from securetf.shield.net._tls import Identity, client_context, server_context

log = logging.getLogger("securetf.shield.net")
#: After the handshake the client names the listen port it wants, inside TLS.
_HEADER = struct.Struct("!H")


class Tunnels:
    def __init__(self, plan: Plan, identity: Identity, netns: int, timing: Timing) -> None:
        self.plan, self.netns, self.timing = plan, netns, timing
        self._client = client_context(identity)
        self._server = server_context(identity)

    # -- out: the program connected to a peer's virtual address ------------------------------

    async def outbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            destination = original_destination(writer.get_extra_info("socket"))
        except OSError:
            close(writer, abort=True)
            return
        route = self.plan.routes.get(destination)
        if route is None or route.endpoint is None:
            log.warning("refused: the program connected to %s:%d, no peer there", *destination)
            close(writer, abort=True)
            return
        tune(writer)
        peer = await self._dial(route)
        if peer is None:
            close(writer, abort=True)
            return
        await splice((reader, writer), peer)

    async def _dial(self, route: Route) -> Stream | None:
        """mTLS to the peer's runtime, retried while it is unreachable; None if it never is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.connect_patience
        delay = self.timing.retry_first
        if route.endpoint is None:
            return None
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        route.endpoint.host,
                        route.endpoint.port,
                        ssl=self._client,
                        server_hostname=f"{route.name}.{self.plan.policy}",
                        ssl_handshake_timeout=self.timing.handshake,
                        limit=WINDOW,
                    ),
                    self.timing.handshake,
                )
            except ssl.SSLError as exc:  # an answer, but not from the peer: never retried
                log.warning("refused peer %s at %s: %s", route.name, route.endpoint, exc)
                return None
            except (OSError, TimeoutError) as exc:
                if loop.time() + delay > deadline:
                    log.warning("peer %s at %s unreachable: %s", route.name, route.endpoint, exc)
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timing.retry_max)
                continue
            try:
                if (
                    peer_service(
                        writer.get_extra_info("peercert"),
                        policy=self.plan.policy,
                        allowed=[route.service],
                    )
                    != route.service
                ):
                    raise PeerRefusedError(f"{route.name} answered for another service")
            except PeerRefusedError as exc:
                log.warning("refused peer %s at %s: %s", route.name, route.endpoint, exc)
                close(writer, abort=True)
                return None
            tune(writer, self.timing)
            writer.write(_HEADER.pack(route.port))
            return reader, writer

    # -- egress: an exception of the policy, carried as plain TCP -----------------------------

    async def egress(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = original_destination(writer.get_extra_info("socket"))
        except OSError:
            close(writer, abort=True)
            return
        if not self.plan.allows_egress(host, port):
            log.warning("refused: egress to %s:%d is not in the policy", host, port)
            close(writer, abort=True)
            return
        try:
            outside = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=WINDOW), self.timing.handshake
            )
        except (OSError, TimeoutError) as exc:
            log.info("egress to %s:%d failed: %s", host, port, exc)
            close(writer, abort=True)
            return
        tune(writer)
        tune(outside[1])
        await splice((reader, writer), outside)

    # -- in: a peer's runtime connected to this one --------------------------------------------

    async def inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = writer.get_extra_info("peername")
        try:
            await writer.start_tls(self._server, ssl_handshake_timeout=self.timing.handshake)
            service = peer_service(
                writer.get_extra_info("peercert"),
                policy=self.plan.policy,
                allowed=self.plan.allowed,
            )
            (port,) = _HEADER.unpack(
                await asyncio.wait_for(reader.readexactly(_HEADER.size), self.timing.handshake)
            )
        except (OSError, TimeoutError, PeerRefusedError, asyncio.IncompleteReadError) as exc:
            log.warning("refused a connection from %s: %r", source, exc)
            close(writer, abort=True)
            return
        if port not in self.plan.listen:
            log.warning("refused %s from %s: port %d is not a listen port", service, source, port)
            close(writer, abort=True)
            return
        tune(writer, self.timing)
        program = await self._into_program(port)
        if program is None:
            log.info("%s from %s: the program never accepted on port %d", service, source, port)
            close(writer, abort=True)
            return
        await splice(program, (reader, writer))

    async def _into_program(self, port: int) -> Stream | None:
        """Connect to the program's port, retried while it is not listening yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.connect_patience
        delay = self.timing.retry_first
        while True:
            sock = socket_inside(self.netns)
            try:
                await asyncio.wait_for(
                    loop.sock_connect(sock, (self.plan.own_address, port)), self.timing.handshake
                )
                program = await asyncio.open_connection(sock=sock, limit=WINDOW)
            except (OSError, TimeoutError):
                sock.close()
                if loop.time() + delay > deadline:
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timing.retry_max)
                continue
            tune(program[1])
            return program

"""The tunnel's copy loop on real sockets and real TLS, on both data paths: both directions
at once, the clean end, and a truncated TLS stream, which the program must see as an error."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.shield.net._native import NativeRelay
from securetf.shield.net._relay import Plain, Tls, relay
from securetf.shield.net._settings import DATA_PATHS
from securetf.shield.net._tls import client_context, server_context

from .pki import Pki

SIZE = 24 * 1024 * 1024
PORT = 5000


def _pair() -> tuple[socket.socket, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


class Rig:
    """program <-plain-> relay <-TLS-> peer, each end a real socket of this process; the
    relay is the Python data path's copy loop, or the compiled relay (securetf-relay)."""

    def __init__(self, pki: Pki, data_path: str, buffer: int = 0) -> None:
        self.program, relay_plain = _pair()
        relay_tls, peer_raw = _pair()
        if buffer:  # small socket buffers: the relay's writes meet a full socket often
            for sock in (relay_plain, relay_tls):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        ident_a, ident_b = pki.identity("worker", 0), pki.identity("worker", 1)
        server = threading.Thread(
            target=lambda: setattr(
                self, "peer", server_context(ident_b).wrap_socket(peer_raw, server_side=True)
            )
        )
        server.start()
        self.peer: ssl.SSLSocket
        self.native: NativeRelay | None = None
        self.thread: threading.Thread | None = None
        if data_path == "native":
            self.native = NativeRelay(ident_a)
            handshake = self.native.tunnel(relay_tls, 10, name="worker-1.pol")
            handshake.report()
            server.join()
            handshake.allow(relay_plain, PORT)
            relay_plain.close()
            relay_tls.close()
            # The relay names the port first, inside TLS.
            assert _receive(self.peer, 2) == PORT.to_bytes(2, "big")
            return
        tls = Tls(relay_tls, client_context(ident_a), server_side=False)
        tls.handshake(10)
        server.join()
        self.thread = threading.Thread(target=relay, args=(Plain(relay_plain), tls), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.program.close()
        self.peer.close()
        if self.thread is not None:
            self.thread.join(10)
            assert not self.thread.is_alive()
        if self.native is not None:
            self.native.stop()


@pytest.fixture(params=DATA_PATHS)
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    the_rig = Rig(Pki(tmp_path), request.param)
    yield the_rig
    the_rig.close()


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(1 << 20, size - got))
        assert chunk, f"ended after {got} of {size} bytes"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_both_directions_at_once_arrive_intact(rig: Rig) -> None:
    up, down = os.urandom(SIZE), os.urandom(SIZE)
    received: dict[str, bytes] = {}
    workers = [
        threading.Thread(target=_send, args=(rig.program, up)),
        threading.Thread(target=_send, args=(rig.peer, down)),
        threading.Thread(target=lambda: received.update(peer=_receive(rig.peer, SIZE))),
        threading.Thread(target=lambda: received.update(program=_receive(rig.program, SIZE))),
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert hashlib.sha256(received["peer"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(received["program"]).digest() == hashlib.sha256(down).digest()


def test_a_clean_end_reaches_the_program_as_a_clean_end(rig: Rig) -> None:
    rig.peer.sendall(b"last words")
    raw = rig.peer.unwrap()  # close_notify: the peer says it is done
    raw.close()
    assert _receive(rig.program, 10) == b"last words"
    rig.program.settimeout(10)
    assert rig.program.recv(100) == b""


def test_a_truncated_stream_reaches_the_program_as_a_reset(rig: Rig) -> None:
    rig.peer.sendall(b"half of it")
    # An attacker on the path ends the TCP stream: no close_notify.
    os.close(rig.peer.detach())
    assert _receive(rig.program, 10) == b"half of it"
    rig.program.settimeout(10)
    with pytest.raises(ConnectionResetError):
        rig.program.recv(100)


def _receive_slowly(sock: socket.socket, size: int) -> bytes:
    """Small reads with pauses: the relay's writes meet a full socket again and again."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(4096, size - got))
        assert chunk, f"ended after {got} of {size} bytes"
        chunks.append(chunk)
        got += len(chunk)
        if len(chunks) % 64 == 0:
            time.sleep(0.002)
    return b"".join(chunks)


@pytest.mark.parametrize("reader", ["peer", "program"])
@pytest.mark.parametrize("data_path", DATA_PATHS)
def test_a_slow_reader_gets_every_byte_in_order(
    tmp_path: Path, data_path: str, reader: str
) -> None:
    """Back-pressure on either side, with small socket buffers: writes that the full socket
    (or the relay's full record ring) stopped go on from where they stopped; nothing is
    lost, doubled or reordered, and nothing stalls."""
    rig = Rig(Pki(tmp_path), data_path, buffer=16384)
    try:
        _slow_transfer(rig, reader)
    finally:
        rig.close()


def _slow_transfer(rig: Rig, reader: str) -> None:
    # 2 MiB: six times what the relay's record ring and both 16 KiB socket buffers hold, so
    # every write is stopped by a full socket or ring many times over.
    data = os.urandom(2 * 1024 * 1024)
    source, sink = (rig.program, rig.peer) if reader == "peer" else (rig.peer, rig.program)
    sender = threading.Thread(target=_send, args=(source, data))
    sender.start()
    sink.settimeout(30)
    received = _receive_slowly(sink, len(data))
    sender.join(30)
    assert not sender.is_alive()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_the_relay_keeps_no_privilege_once_it_has_its_key(tmp_path: Path) -> None:
    """The relay parses what any peer on the network sends. A flaw there must not hand over
    root in the runtime's namespaces: once its key is loaded it runs as nobody, with no
    capability and no way to gain one, and it still dies with the runtime."""
    native = NativeRelay(Pki(tmp_path).identity("worker", 0))
    try:
        status = _status(native.pid)
        assert status["Uid"].split() == ["65534"] * 4
        assert status["Gid"].split() == ["65534"] * 4
        assert status["Groups"] == ""
        assert int(status["CapEff"], 16) == 0
        assert int(status["CapPrm"], 16) == 0
        assert status["NoNewPrivs"] == "1"
        stat = Path(f"/proc/{native.pid}/stat").read_text()
        assert int(stat[stat.rindex(")") + 2 :].split()[1]) == os.getpid()  # our child
    finally:
        native.stop()


def test_the_relay_dies_with_its_runtime(tmp_path: Path) -> None:
    """A runtime that ends without stopping its relay (killed outright) leaves no relay
    behind, also now that the relay changes its credentials (which clears a process's
    parent-death signal: the relay sets it again; the end of its control socket ends it
    too)."""
    ident = Pki(tmp_path).identity("worker", 0)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from securetf.shield.net import Identity\n"
        "from securetf.shield.net._native import NativeRelay\n"
        "relay = NativeRelay(Identity(*(Path(a) for a in sys.argv[1:4])))\n"
        "print(relay.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    argv = [sys.executable, "-c", script, str(ident.certificate), str(ident.key), str(ident.ca)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the relay outlived its runtime"

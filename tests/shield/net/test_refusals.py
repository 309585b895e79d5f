"""Nobody outside the policy gets in, and the program is never carried to an impostor.

Each refusal case has a control that passes with the right certificate, so a refusal cannot
come from a broken test setup.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.shield.net import Identity

from .conftest import PORT, TUNNEL, StartNode, app, peer_map, verdict, wait_for_tunnel_port
from .lab import Lab
from .pki import Pki

SECRET = b"secret-payload-" * 8


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another policy's CA that even uses the same policy name."""
    return Pki(tmp_path_factory.mktemp("other-pki"))


def _client_context(trust: Pki, identity: Identity | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cadata=trust.ca_pem.decode())
    if identity is not None:
        ctx.load_cert_chain(identity.certificate, identity.key)
    return ctx


def _knock(lab: Lab, trust: Pki, identity: Identity | None) -> bytes:
    """From host c: mTLS to worker-0's runtime, ask for its listen port, send, read back."""
    raw = lab.socket("c")
    raw.settimeout(10)
    raw.connect((lab.addresses["a"], TUNNEL))
    got = b""
    try:
        with _client_context(trust, identity).wrap_socket(raw, server_hostname="worker-0.pol") as s:
            s.sendall(struct.pack("!H", PORT) + SECRET)
            while len(got) < len(SECRET):
                data = s.recv(4096)
                if not data:
                    break
                got += data
    except (OSError, ssl.SSLError):
        pass
    return got


@pytest.fixture
def worker0(lab: Lab, start_node: StartNode) -> None:
    """worker-0 on host a, its program echoing on PORT."""
    start_node("a", 0, app("echo", PORT, 0))
    wait_for_tunnel_port(lab, "a")


def test_inbound_control_right_certificate_is_served(lab: Lab, pki: Pki, worker0: None) -> None:
    assert _knock(lab, pki, pki.identity("worker", 1)) == SECRET


@pytest.mark.parametrize("who", ["no certificate", "another CA", "another service"])
def test_inbound_refused(lab: Lab, pki: Pki, other_ca: Pki, worker0: None, who: str) -> None:
    identity = {
        "no certificate": None,
        "another CA": other_ca.identity("worker", 1),
        "another service": pki.identity("intruder", 0),
    }[who]
    assert _knock(lab, pki, identity) == b""


def test_inbound_plaintext_gets_nothing(lab: Lab, worker0: None) -> None:
    with contextlib.closing(lab.socket("c")) as sock:
        sock.settimeout(10)
        sock.connect((lab.addresses["a"], TUNNEL))
        sock.sendall(struct.pack("!H", PORT) + SECRET)
        with contextlib.suppress(OSError):
            reply = sock.recv(4096)
            assert SECRET not in reply


class FakePeer:
    """A TLS server on host c that claims to be worker-1 with some certificate."""

    def __init__(self, lab: Lab, identity: Identity) -> None:
        self.received = b""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(identity.certificate, identity.key)
        self._sock = lab.socket("c")
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((lab.addresses["c"], TUNNEL))
        self._sock.listen()
        self._sock.settimeout(20)
        self._thread = threading.Thread(target=self._serve, args=(ctx,), daemon=True)
        self._thread.start()

    def _serve(self, ctx: ssl.SSLContext) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self._sock.accept()
            conn.settimeout(5)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                while data := tls.recv(65536):
                    self.received += data

    def close(self) -> None:
        self._sock.close()
        self._thread.join(30)


@contextlib.contextmanager
def fake_peer(lab: Lab, identity: Identity) -> Iterator[FakePeer]:
    peer = FakePeer(lab, identity)
    try:
        yield peer
    finally:
        peer.close()


def _send_to_worker1(lab: Lab, start_node: StartNode, tmp: Path) -> dict[str, object]:
    where = peer_map(lab, where={0: "a", 1: "c"})
    node = start_node("a", 0, app("send", "worker", 1, len(SECRET), SECRET.decode()), peers=where)
    return verdict(node, timeout=40)


def test_outbound_control_right_certificate_is_reached(
    lab: Lab, pki: Pki, start_node: StartNode, tmp_path: Path
) -> None:
    with fake_peer(lab, pki.identity("worker", 1)) as peer:
        result = _send_to_worker1(lab, start_node, tmp_path)
    # The fake peer does not echo, but it did receive the program's bytes over TLS.
    assert result["result"] == "closed"
    assert SECRET in peer.received


@pytest.mark.parametrize("who", ["another CA", "another service", "another instance"])
def test_outbound_refused(
    lab: Lab, pki: Pki, other_ca: Pki, start_node: StartNode, tmp_path: Path, who: str
) -> None:
    identity = {
        "another CA": other_ca.identity("worker", 1),
        "another service": pki.identity("intruder", 1),
        "another instance": pki.identity("worker", 0),
    }[who]
    with fake_peer(lab, identity) as peer:
        result = _send_to_worker1(lab, start_node, tmp_path)
    assert result["result"] == "closed", result  # closed at once, not hanging
    assert float(str(result["seconds"])) < 5
    assert peer.received == b""

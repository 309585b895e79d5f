"""A tunnel carries nothing to or from a peer whose certificate is no longer live.

Attack (THREATS.md, "a revoked or superseded instance"): the runtime of an instance whose
slot was provisioned again keeps its certificate, which still chains to the policy's CA and
names its service, and keeps offering tunnels and asking for them. Here a real CAS issues
every certificate through real provisioning; the shield under test (instance train-1, in
this process, as ``securetf run`` builds it) asks that CAS through a CasClient, over real
TLS. Each refusal has a control with the live certificate of the same slot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.client import CasClient, CasPin, LivenessChecker, load_pin
from securetf.protocol.messages import NetworkGrant, PeerService
from securetf.shield.net import Endpoint, Identity, NetShield, PeerLiveness, Timing, plan
from tests.client.real_cas import Issued, RealCas, real_cas
from tests.ports import free_port
from tests.serve.support import RecordingTlsServer, TlsPair

from .lab import ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("nft")),
    reason="the network shield needs root, ip and nft",
)

PORT = 5000
SECRET = b"program-secret-" * 8
GRANT = NetworkGrant(
    peers=["train"], listen=[PORT], cluster={"train": PeerService(instances=2, listen=[PORT])}
)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCas]:
    yield from real_cas(tmp_path_factory.mktemp("shield-cas"))


@pytest.fixture
def slots(cas: RealCas, tmp_path: Path) -> dict[str, Issued]:
    """train-0 provisioned twice (``old0`` superseded by ``new0``), and train-1."""
    policy = cas.new_policy()
    return {
        "old0": cas.provision(policy, tmp_path / "old0"),
        "new0": cas.provision(policy, tmp_path / "new0"),
        "one": cas.provision(policy, tmp_path / "one", instance=1),
    }


@contextlib.contextmanager
def shield_of(one: Issued, liveness: PeerLiveness, train0: int) -> Iterator[tuple[NetShield, int]]:
    """train-1's shield, its program echoing on PORT; train-0's runtime is at ``train0``."""
    inbound = free_port()
    the_plan = plan(
        GRANT,
        policy=one.policy,
        service="train",
        instance=1,
        peers={"train-0": Endpoint("127.0.0.1", train0), "train-1": Endpoint("127.0.0.1", inbound)},
    )
    timing = Timing(connect_patience=5.0)
    identity = Identity(one.cert, one.key, one.ca)
    with NetShield(the_plan, identity, liveness=liveness, timing=timing) as shield:
        with shield.program_namespace():
            echo = subprocess.Popen(
                [sys.executable, "-m", "tests.shield.net.apps", "echo", str(PORT)], cwd=ROOT
            )
        try:
            yield shield, inbound
        finally:
            echo.kill()
            echo.wait()


def knock(port: int, who: Issued) -> bytes:
    """As train-0's runtime: mTLS to train-1's, ask for its listen port, send, read back."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=who.ca)
    ctx.load_cert_chain(who.cert, who.key)
    got = b""
    with contextlib.suppress(OSError):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=f"train-1.{who.policy}") as tls:
            tls.sendall(struct.pack("!H", PORT) + SECRET)
            while len(got) < len(SECRET) and (data := tls.recv(4096)):
                got += data
    return got


def send_to_train0(shield: NetShield) -> dict[str, object]:
    """The program connects to train-0's address; its verdict (the recorder never echoes)."""
    env = {**os.environ, "TF_CONFIG": shield.tf_config()}
    argv = [sys.executable, "-m", "tests.shield.net.apps", "send", "train", "0", str(len(SECRET))]
    with shield.program_namespace():
        proc = subprocess.Popen([*argv, SECRET.decode()], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def test_a_superseded_peer_is_refused_both_ways_and_the_live_one_served(
    cas: RealCas, slots: dict[str, Issued], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="securetf.shield.net")
    old0, new0, one = slots["old0"], slots["new0"], slots["one"]
    train0 = free_port()
    with (
        cas.client() as status,
        shield_of(one, LivenessChecker(status.instance_status, policy=one.policy), train0) as (
            shield,
            inbound,
        ),
    ):
        # In: the superseded train-0 asks for a tunnel; its bytes never reach the program.
        assert knock(inbound, old0) == b""
        assert knock(inbound, new0) == SECRET  # control: the live train-0 is served
        # Out: the program's connection to train-0 reaches a runtime holding the superseded
        # certificate; it gets not one byte.
        server = RecordingTlsServer(TlsPair(old0.cert, old0.key), port=train0)
        try:
            result = send_to_train0(shield)
        finally:
            server.close()
        assert result["result"] == "closed", result
        assert server.connections == 1  # it was reached: the refusal came after the handshake
        assert bytes(server.received) == b""
        # Control: the live train-0's certificate at the same place gets the program's bytes.
        server = RecordingTlsServer(TlsPair(new0.cert, new0.key), port=train0)
        try:
            send_to_train0(shield)
        finally:
            server.close()
        assert SECRET in bytes(server.received)
    refusals = [r.getMessage() for r in caplog.records if "superseded" in r.getMessage()]
    assert len(refusals) == 2, caplog.text  # each refusal is logged, with the CAS's reason


def test_a_cas_that_cannot_be_reached_refuses_every_peer(
    cas: RealCas, slots: dict[str, Issued]
) -> None:
    """Fail closed: the live train-0 gets no tunnel while the CAS does not answer."""
    pin = load_pin(cas.url, cas.proc.home)
    gone = CasClient(CasPin(f"https://127.0.0.1:{free_port()}", pin.certificate_pem, "", "", ""))
    one = slots["one"]
    with (
        gone,
        shield_of(one, LivenessChecker(gone.instance_status, policy=one.policy), 1) as (
            _,
            inbound,
        ),
    ):
        assert knock(inbound, slots["new0"]) == b""

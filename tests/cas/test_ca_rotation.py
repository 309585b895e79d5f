"""Rotating a policy's CA (``ca.generation``) with an overlap: instances certified by the
previous CA stay trusted, over real TLS, until the overlap ends, and not after."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from securetf.cas.core import Cas
from securetf.crypto import Certificate
from securetf.errors import PolicyError
from tests.cas.support import Clock, Owners, Runtime, policy_cas, policy_yaml, signed

OVERLAP = 3600


def update_ca(cas: Cas, owners: Owners, clock: Clock, generation: int, overlap: int) -> None:
    """Owners apply the next version of ``cancer`` with this ``ca`` section."""
    current = cas.policy("cancer")[0]
    yaml = policy_yaml(owners, version=current.version + 1, predecessor=current.hash)
    yaml += f"ca: {{generation: {generation}, overlap_seconds: {overlap}}}\n".encode()
    signatures = [signed(owners.alice, yaml, clock.now), signed(owners.bob, yaml, clock.now)]
    cas.apply_policy(yaml, signatures, {})


def handshake(tmp: Path, cert_pem: str, runtime: Runtime, trust: str) -> None:
    """A TLS handshake: a server with ``cert_pem`` (the runtime's key), a client that
    trusts the CA bundle ``trust`` (as peers and serving clients do)."""
    (tmp / "leaf.crt").write_text(cert_pem)
    (tmp / "leaf.key").write_bytes(runtime.tls.to_pem())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "leaf.crt", tmp / "leaf.key")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.load_verify_locations(cadata=trust)
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b) as c:
            c.sendall(b"x")
    finally:
        b.close()
        thread.join(10)
        a.close()


def provision(cas: Cas, runtime: Runtime) -> tuple[str, str]:
    """The instance certificate and the CA bundle a provisioning hands out."""
    response = cas.provision(runtime.request(cas.nonce().nonce))
    return response.certificate_pem, response.ca_certificate_pem


def names(bundle: str) -> list[str]:
    return [c.subject_cn for c in Certificate.load_pem_chain(bundle.encode())]


def test_the_previous_ca_is_trusted_until_the_overlap_ends(tmp_path: Path) -> None:
    clock, owners = Clock(), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    old_runtime = Runtime(home=tmp_path / "home")
    old_cert, old_bundle = provision(cas, old_runtime)
    assert names(old_bundle) == ["cancer CA"]

    update_ca(cas, owners, clock, generation=2, overlap=OVERLAP)
    new_runtime = Runtime(home=tmp_path / "home")
    new_cert, bundle = provision(cas, new_runtime)
    assert names(bundle) == ["cancer CA 2", "cancer CA"]  # the new CA issues; both trusted
    assert Certificate.load(new_cert.encode()).issuer_cn == "cancer CA 2"
    assert cas.policy("cancer")[1].decode() == bundle  # clients get the same bundle
    handshake(tmp_path, old_cert, old_runtime, bundle)  # an old instance, during the overlap
    handshake(tmp_path, new_cert, new_runtime, bundle)

    clock.now += OVERLAP + 1
    after = cas.policy("cancer")[1].decode()  # what clients and new instances get now
    assert names(after) == ["cancer CA 2"]
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, old_cert, old_runtime, after)
    handshake(tmp_path, new_cert, new_runtime, after)


def test_an_expired_overlap_refuses_the_old_ca_even_in_a_kept_bundle(tmp_path: Path) -> None:
    """Attack: a peer kept the bundle from the overlap; once the overlap is over, the
    previous CA's certificate in it has expired, and the old instance is refused."""
    clock, owners = Clock(now=time.time() - 2 * OVERLAP), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    old_runtime = Runtime(home=tmp_path / "home", clock=clock)
    old_cert, _ = provision(cas, old_runtime)
    update_ca(cas, owners, clock, generation=2, overlap=OVERLAP)  # it ended an hour ago
    kept = cas.policy("cancer")[1].decode()
    assert names(kept) == ["cancer CA 2", "cancer CA"]
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        handshake(tmp_path, old_cert, old_runtime, kept)


def test_the_generation_never_goes_down_and_rotations_are_audited(tmp_path: Path) -> None:
    clock, owners = Clock(), Owners()
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    update_ca(cas, owners, clock, generation=3, overlap=0)
    assert names(cas.policy("cancer")[1].decode()) == ["cancer CA 3"]  # no overlap
    with pytest.raises(PolicyError, match=r"ca\.generation goes down from 3 to 2"):
        update_ca(cas, owners, clock, generation=2, overlap=0)
    assert cas.policy("cancer")[0].version == 2
    update_ca(cas, owners, clock, generation=3, overlap=0)  # the same generation: no rotation
    assert names(cas.policy("cancer")[1].decode()) == ["cancer CA 3"]

"""Two CAS processes on one PostgreSQL database: the SDK fails over between them, and a
``kill -9`` of one under concurrent load loses no committed decision and grants nothing twice."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securetf.attestation import default_sim_trust
from securetf.client import CasClient, attest_cas, save_pin
from securetf.errors import Error, RollbackError
from securetf.protocol import ProvisionResponse
from tests.cas.pg_support import PgServer
from tests.ports import free_port

from .server_support import CasProcess
from .support import DATASET_KEY, Owners, Runtime, policy_yaml, tag_update

CLIENTS = 16
LOAD_SECONDS = 2.0  # of load before the kill, and again after it


@dataclass
class Replicas:
    a: CasProcess
    b: CasProcess
    home: Path
    owners: Owners = field(default_factory=Owners)

    @property
    def urls(self) -> str:
        return f"{self.a.url},{self.b.url}"


@pytest.fixture
def replicas(tmp_path: Path, postgres_server: PgServer) -> Iterator[Replicas]:
    """Two replicas of one CAS: one data directory (master key, identity), one database."""
    home = tmp_path / "home"
    home.mkdir()
    db = postgres_server.create_database()
    data = tmp_path / "cas"
    a = CasProcess(data=data, home=home, port=free_port(), db=db)
    b = CasProcess(data=data, home=home, port=free_port(), db=db)
    a.start()  # first: it creates the data directory's keys, which b then loads
    b.start()
    old_home = os.environ.get("SECURETF_HOME")
    os.environ["SECURETF_HOME"] = str(home)
    try:
        for cas in (a, b):
            pin = attest_cas(
                cas.url,
                now=int(time.time()),
                allowed_tees=("sim",),
                sim_trust=default_sim_trust(home),
            )
            save_pin(pin, home)
        replicas = Replicas(a, b, home)
        with CasClient.for_url(replicas.urls) as client:
            client.apply_policy(
                policy_yaml(replicas.owners), replicas.owners.alice, {"dataset-key": DATASET_KEY}
            )
        yield replicas
    finally:
        if old_home is None:
            os.environ.pop("SECURETF_HOME", None)
        else:
            os.environ["SECURETF_HOME"] = old_home
        a.stop()
        b.stop()
        postgres_server.drop_database(db)


def test_the_sdk_fails_over_to_the_next_replica(replicas: Replicas) -> None:
    runtime = Runtime(home=replicas.home)
    with CasClient.for_url(replicas.urls) as client:
        client.provision(runtime.request(client.nonce().nonce))
        replicas.a.kill9()
        # The connection to a is gone: the same client carries on at b.
        client.provision(runtime.request(client.nonce().nonce, instance=1))
    with CasClient.for_url(replicas.urls) as client:  # a new client: a refuses to connect
        client.provision(runtime.request(client.nonce().nonce))
    replicas.b.kill9()
    with CasClient.for_url(replicas.urls) as client, pytest.raises(Error) as refused:
        client.nonce()
    assert replicas.a.url in str(refused.value)
    assert replicas.b.url in str(refused.value)


@dataclass
class Outcomes:
    """What the clients were told: only these are committed decisions they rely on."""

    granted: list[ProvisionResponse] = field(default_factory=list)
    moved: list[tuple[str, int]] = field(default_factory=list)  # (tag, version) acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client_loop(replicas: Replicas, n: int, stop: threading.Event, out: Outcomes) -> None:
    """Provision instance ``n % 2`` again and again, moving the model volume's tag each time
    from the state the grant names (most moves lose the race to another client's)."""
    urls = replicas.urls if n % 2 else f"{replicas.b.url},{replicas.a.url}"
    with CasClient.for_url(urls) as client:
        while not stop.is_set():
            runtime = Runtime(home=replicas.home)  # a fresh TLS key per request
            try:
                response = client.provision(runtime.request(client.nonce().nonce, instance=n % 2))
            except Error:
                continue  # refused or unreachable: nothing the client relies on
            with out.lock:
                out.granted.append(response)
            grant = runtime.open(response).volumes["model"]
            tag, version = f"t{n}-{time.monotonic_ns()}", grant.version + 1
            try:
                client.update_tag(
                    tag_update(runtime, response.serial, "model", grant.tag, tag, version)
                )
            except (RollbackError, Error):
                continue
            with out.lock:
                out.moved.append((tag, version))


@pytest.mark.slow
def test_kill_9_of_a_replica_under_load_loses_nothing_and_grants_nothing_twice(
    replicas: Replicas,
) -> None:
    out = Outcomes()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client_loop, args=(replicas, n, stop, out)) for n in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    replicas.a.kill9()
    before = len(out.granted)
    time.sleep(LOAD_SECONDS)
    stop.set()
    for t in threads:
        t.join()
    assert before > 0
    assert len(out.granted) > before

    with CasClient.for_url(replicas.b.url) as client:
        trail = client.audit("cancer", replicas.owners.alice)  # the chain verifies
        accepted = [e["detail"] for e in trail.entries if e["kind"] == "provision.accepted"]
        moves = {
            (str(e["detail"]["to"]), int(e["detail"]["version"]))
            for e in trail.entries
            if e["kind"] == "tag.moved"
        }
    # Every grant a client received is committed, once: one certificate per serial...
    serials = [int(str(d["serial"])) for d in accepted]
    assert len(serials) == len(set(serials))
    assert {r.serial for r in out.granted} <= set(serials)
    # ...and one per request: no TLS key was certified twice (the log holds each certificate).
    keys = [cert_key(r.certificate_pem) for r in out.granted]
    assert len(keys) == len(set(keys))
    # Every acknowledged tag move is committed, and the chain of moves has no fork:
    # each version was reached once.
    assert set(out.moved) <= moves
    versions = [v for _, v in moves]
    assert len(versions) == len(set(versions))
    assert sorted(versions) == list(range(1, len(versions) + 1))


def cert_key(pem: str) -> bytes:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

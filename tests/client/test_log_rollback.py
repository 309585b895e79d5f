"""A CAS whose database is put back to an older copy is caught by every client that saw
a later checkpoint: the owner CLI, the runtime's provisioning and the serving client
(#14 items 3 and 4). Clients also refuse answers the log does not record."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.attestation import SimProducer
from securetf.client import ServingClient, load_pin
from securetf.client._logcheck import NotLoggedError
from securetf.errors import IntegrityError
from securetf.log import LogRollbackError
from securetf.runtime.provision import provision
from tests.cas.support import MEASUREMENT
from tests.client.real_cas import Issued, RealCas, real_cas

pytestmark = pytest.mark.slow


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[RealCas]:
    yield from real_cas(tmp_path)


class TlsServer:
    """A server that completes TLS handshakes with an issued instance certificate."""

    def __init__(self, issued: Issued) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(issued.cert, issued.key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def _snapshot(cas: RealCas, to: Path) -> None:
    cas.proc.stop()  # stopped, so the WAL is folded in
    to.mkdir()
    for f in cas.proc.data.glob("cas.db*"):
        shutil.copy2(f, to / f.name)
    cas.proc.start()


def _restore(cas: RealCas, backup: Path) -> None:
    cas.proc.stop()
    for f in cas.proc.data.glob("cas.db*"):
        f.unlink()
    for f in backup.glob("cas.db*"):
        shutil.copy2(f, cas.proc.data / f.name)
    cas.proc.start()


def _provision(cas: RealCas, policy: str) -> None:
    """What `securetf run` does: attest and provision through the SDK, with sim evidence."""
    with cas.client() as client:
        provision(
            client,
            SimProducer(MEASUREMENT, home=cas.proc.home),
            policy=policy,
            service="train",
            instance=0,
            measurement=MEASUREMENT,
        )


def test_a_restored_database_is_refused_by_owner_cli_runtime_and_serving_client(
    cas: RealCas, tmp_path: Path
) -> None:
    policy = cas.new_policy()
    backup = tmp_path / "backup"
    _snapshot(cas, backup)
    # Later: an update, a provisioning, a server; every client sees and keeps a later log.
    cas.update(policy)
    _provision(cas, policy)
    issued = cas.provision(policy, tmp_path / "train-0")
    shown = cas.proc.cli("policy", "show", policy, "--cas", cas.url)
    assert "version 2" in shown.stdout
    server = TlsServer(issued)
    try:
        with cas.client() as client:
            serving = ServingClient.from_cas(
                client, f"https://127.0.0.1:{server.port}", policy=policy, service="train"
            )
            with serving:
                serving.verify()  # live, and its certificate is in the log

        # The operator puts the older database back: version 1 in force again, no
        # certificates issued. Every client that saw the later log refuses it.
        _restore(cas, backup)
        refused = cas.proc.cli("policy", "show", policy, "--cas", cas.url, ok=False)
        assert refused.returncode == IntegrityError.exit_code
        assert "rolled back" in refused.stderr
        with pytest.raises(LogRollbackError, match="rolled back"):
            _provision(cas, policy)
        with cas.client() as client, pytest.raises(LogRollbackError):
            ServingClient.from_cas(
                client, f"https://127.0.0.1:{server.port}", policy=policy, service="train"
            )
    finally:
        server.close()


def _db(cas: RealCas) -> sqlite3.Connection:
    return sqlite3.connect(cas.proc.data / "cas.db")


def test_a_certificate_the_log_does_not_record_is_refused(cas: RealCas, tmp_path: Path) -> None:
    policy = cas.new_policy()
    issued = cas.provision(policy, tmp_path / "train-0")
    other = cas.provision(policy, tmp_path / "train-1", instance=1)
    server = TlsServer(issued)
    url = f"https://127.0.0.1:{server.port}"
    try:
        # The database administrator points the certificate's log entry at another
        # certificate's entry, then deletes it: the serving client refuses both.
        ref = f"certificate/{policy}/{issued.serial}"
        with _db(cas) as db:
            (other_idx,) = db.execute(
                "SELECT idx FROM log_refs WHERE ref = ?", (f"certificate/{policy}/{other.serial}",)
            ).fetchone()
            db.execute("UPDATE log_refs SET idx = ? WHERE ref = ?", (other_idx, ref))
        with (
            cas.client() as client,
            ServingClient.from_cas(client, url, policy=policy, service="train") as serving,
            pytest.raises(NotLoggedError, match="does not record"),
        ):
            serving.verify()
        with _db(cas) as db:
            db.execute("DELETE FROM log_refs WHERE ref = ?", (ref,))
        with (
            cas.client() as client,
            ServingClient.from_cas(client, url, policy=policy, service="train") as serving,
            pytest.raises(NotLoggedError, match="names no log entry"),
        ):
            serving.verify()
    finally:
        server.close()


def test_a_policy_answer_the_log_does_not_record_is_refused(cas: RealCas) -> None:
    policy = cas.new_policy()
    with cas.client() as client:
        client.policy(policy)  # recorded: accepted
    with _db(cas) as db:
        db.execute("UPDATE log_refs SET idx = 0 WHERE ref = ?", (f"policy/{policy}/1",))
    with cas.client() as client, pytest.raises(NotLoggedError, match="does not record"):
        client.policy(policy)
    refused = cas.proc.cli("policy", "show", policy, "--cas", cas.url, ok=False)
    assert refused.returncode == IntegrityError.exit_code


def test_the_pinned_identity_is_proven_in_the_log(cas: RealCas) -> None:
    pin = load_pin(cas.url, cas.proc.home)
    assert pin.log_vkey is not None
    kept = list((cas.proc.home / "cas-pins").glob("*.checkpoint"))
    assert len(kept) == 1  # `cas attest` proved the identity entry and kept the checkpoint
    # The identity entry rewritten by the database administrator: attesting again fails.
    with _db(cas) as db:
        db.execute("UPDATE log_refs SET idx = idx + 1 WHERE ref = 'identity'")
    again = cas.proc.cli("cas", "attest", "--cas", cas.url, "--allow-sim", ok=False)
    assert again.returncode == IntegrityError.exit_code, again.stderr
    assert "identity" in again.stderr

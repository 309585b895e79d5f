"""Secrets and CA keys: round trip, and what the database alone reveals (nothing)."""

from __future__ import annotations

import os

import pytest

from securetf.cas._records import PendingUpdate, PolicyCa
from securetf.cas._store_api import Store
from securetf.cas.master_key import MasterKey
from securetf.cas.store import StoreError, open_store
from securetf.crypto import SigningKey
from securetf.errors import IntegrityError
from tests.cas.pg_support import PgServer
from tests.cas.store.conftest import raw_sql, sqlite_files


def test_secret_round_trip_and_replace(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_secret("p", "k") is None
        tx.put_secret("p", "k", b"one")
        tx.put_secret("p", "empty", b"")
        tx.put_secret("q", "k", b"other policy")
    with store.transaction() as tx:
        assert tx.get_secret("p", "k") == b"one"
        assert tx.get_secret("p", "empty") == b""
        tx.put_secret("p", "k", b"two")
    with store.transaction() as tx:
        assert tx.get_secret("p", "k") == b"two"
        assert tx.get_secret("q", "k") == b"other policy"


def test_ca_round_trip_and_replace(store: Store) -> None:
    ca = PolicyCa("p", b"-----BEGIN PRIVATE KEY-----\nabc\n", b"-----BEGIN CERTIFICATE-----\n")
    with store.transaction() as tx:
        assert tx.get_ca("p") is None
        tx.put_ca(ca)
    with store.transaction() as tx:
        assert tx.get_ca("p") == ca
        tx.put_ca(PolicyCa("p", b"new key", b"new cert"))
    with store.transaction() as tx:
        assert tx.get_ca("p") == PolicyCa("p", b"new key", b"new cert")


def _database_bytes(db_url: str, request: pytest.FixtureRequest) -> bytes:
    """Every byte the database keeps: the SQLite files; PostgreSQL's rows (as text, bytea
    in hex) and, after a checkpoint, every file of the server's data directory."""
    if db_url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in sqlite_files(db_url))
    tables = [
        r[0] for r in raw_sql(db_url, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
    ]
    query = "SELECT string_agg(t::text, '|') FROM {} t"  # our own table names below
    rows = [str(raw_sql(db_url, query.format(t))[0][0]) for t in tables]
    server: PgServer = request.getfixturevalue("postgres_server")
    server.execute("CHECKPOINT")
    files = (p for p in server.data_dir.rglob("*") if p.is_file())
    return "|".join(rows).encode() + b"".join(p.read_bytes() for p in files)


def _present(marker: bytes, found: bytes) -> bool:
    return marker in found or marker.hex().encode() in found


def test_database_alone_reveals_no_secret(
    db_url: str, store: Store, request: pytest.FixtureRequest
) -> None:
    secret, ca_key, pending_secret = (os.urandom(12).hex().encode() for _ in range(3))
    visible = os.urandom(12).hex().encode()  # control: plain data must be found by the scan
    with store.transaction() as tx:
        tx.put_secret("p", "k", b"secret:" + secret)
        tx.put_ca(PolicyCa("p", b"key:" + ca_key, b"cert"))
        tx.put_pending(PendingUpdate("p", 2, "h", visible, (), (("s", pending_secret),), 1.0))
    store.close()
    found = _database_bytes(db_url, request)
    assert _present(visible, found)
    for marker in (secret, ca_key, pending_secret):
        assert not _present(marker, found)


def test_ciphertext_moved_to_another_row_fails(db_url: str, store: Store) -> None:
    with store.transaction() as tx:
        tx.put_secret("p", "a", b"value a")
        tx.put_secret("p", "b", b"value b")
        tx.put_secret("q", "a", b"value qa")
        tx.put_ca(PolicyCa("p", b"ca key", b"cert"))
    # Swap the two rows' ciphertexts, as someone with write access to the database could.
    sealed = dict(raw_sql(db_url, "SELECT name, sealed FROM secrets WHERE policy = 'p'"))
    for name, other in (("a", "b"), ("b", "a")):
        update = "UPDATE secrets SET sealed = :s WHERE policy = 'p' AND name = :n"
        raw_sql(db_url, update, s=sealed[other], n=name)
    with store.transaction() as tx:
        with pytest.raises(IntegrityError):
            tx.get_secret("p", "a")
        with pytest.raises(IntegrityError):
            tx.get_secret("p", "b")
    # Another policy's secret of the same name, and a secret as a CA key, fail the same way.
    raw_sql(db_url, "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE policy='q')")
    raw_sql(db_url, "UPDATE cas SET key_sealed = (SELECT sealed FROM secrets WHERE policy='q')")
    with store.transaction() as tx:
        assert tx.get_secret("q", "a") == b"value qa"
        with pytest.raises(IntegrityError):
            tx.get_secret("p", "a")
        with pytest.raises(IntegrityError):
            tx.get_ca("p")


def test_edited_ciphertext_fails(db_url: str, store: Store) -> None:
    with store.transaction() as tx:
        tx.put_secret("p", "a", b"value a")
    sealed = raw_sql(db_url, "SELECT sealed FROM secrets")[0][0]
    for bad in (bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1]), b"", b"\x02" + bytes(sealed[1:])):
        raw_sql(db_url, "UPDATE secrets SET sealed = :s", s=bad)
        with pytest.raises(IntegrityError), store.transaction() as tx:
            tx.get_secret("p", "a")


def test_another_master_key_cannot_open(db_url: str, store: Store) -> None:
    with store.transaction() as tx:
        tx.put_secret("p", "a", b"value a")
    store.close()
    # The database's state does not authenticate under another key: the CAS refuses to start.
    with pytest.raises(StoreError, match="does not authenticate under this master key"):
        open_store(db_url, master_key=MasterKey.generate(), audit_key=SigningKey.generate())

"""A provisioning answer asked for with ``?log_from=`` carries its log proofs, and one whose
proofs cannot be built still answers the committed decision, without them (the client then
proves it against the log the usual way, which names the log's fault); the proofs are of
a tree the database holds, also once its log was put back and grown by another writer."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from securetf.cas.api import create_app
from securetf.cas.translog import CasLog
from securetf.crypto import SigningKey
from securetf.log import Ed25519Signer, Edges, LogStoreError, LogTree
from securetf.log.sql import SqlLogStore

from .app_support import CAS_URL
from .support import Clock, Owners, Runtime, policy_cas


def _provision(tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime) -> Any:
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    identity = SimpleNamespace(log_signer=Ed25519Signer("cas.test", SigningKey.generate()))
    http = TestClient(create_app(cas, identity), base_url=CAS_URL)  # type: ignore[arg-type]
    nonce = base64.b64decode(http.post("/v1/nonce").json()["nonce"])
    body = runtime.request(nonce).model_dump(mode="json")
    answer = http.post("/v1/provision?log_from=0", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_answer_carries_its_proofs(
    tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime
) -> None:
    answer = _provision(tmp_path, clock, owners, runtime)
    indexes = {e["index"] for e in answer["log_bundle"]["entries"]}
    assert indexes == {answer["log_index"], answer["policy_log_index"]}


def test_proofs_that_cannot_be_built_leave_the_answer_without_them(
    tmp_path: Path,
    clock: Clock,
    owners: Owners,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise LogStoreError("the log database failed while reading the log: disk I/O error")

    monkeypatch.setattr(CasLog, "bundle", broken)
    answer = _provision(tmp_path, clock, owners, runtime)
    assert answer["log_bundle"] is None
    assert answer["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert answer["log_index"] is not None


def _log_rows(db: Path) -> Engine:
    return create_engine(f"sqlite:///{db}")


def test_the_proofs_are_of_the_tree_the_decision_committed(
    tmp_path: Path,
    clock: Clock,
    owners: Owners,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer's checkpoint is a tree the database holds and its proofs are that
    tree's, though built from what the CAS kept of the commit (no read of the log)."""
    reads: list[SqlLogStore] = []
    real = SqlLogStore.reading

    def reading(self: SqlLogStore) -> Any:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(SqlLogStore, "reading", reading)
    answer = _provision(tmp_path, clock, owners, runtime)
    assert reads == []
    bundle = answer["log_bundle"]
    size, root = _checkpoint(bundle["checkpoint"])
    fresh = LogTree(SqlLogStore(_log_rows(tmp_path / "cas.db")))
    assert root == fresh.root(size)
    for entry in bundle["entries"]:
        proof = [base64.b64decode(h) for h in entry["proof"]]
        assert proof == fresh.inclusion_proof(entry["index"], size)
        assert (
            base64.b64decode(entry["data"]) == fresh.entries(entry["index"], entry["index"] + 1)[0]
        )


@pytest.mark.parametrize("grown", [0, 2], ids=["to the kept size", "past it"])
def test_a_log_put_back_and_grown_by_another_writer_is_proven_as_the_database_holds_it(
    tmp_path: Path, clock: Clock, owners: Owners, runtime: Runtime, grown: int
) -> None:
    """Between two provisionings the log's rows are put back to an older size and another
    writer appends another history up to the CAS's kept edge or past it: the next answer's
    proofs are of the database's tree, not of the edge the CAS kept."""
    cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, clock, owners)
    identity = SimpleNamespace(log_signer=Ed25519Signer("cas.test", SigningKey.generate()))
    http = TestClient(create_app(cas, identity), base_url=CAS_URL)  # type: ignore[arg-type]

    def provision() -> Any:
        nonce = base64.b64decode(http.post("/v1/nonce").json()["nonce"])
        body = runtime.request(nonce).model_dump(mode="json")
        answer = http.post("/v1/provision?log_from=0", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = provision()
    kept = _checkpoint(first["log_bundle"]["checkpoint"])[0]
    engine = _log_rows(tmp_path / "cas.db")
    back = first["policy_log_index"] + 1
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tlog_entries WHERE idx >= :n"), {"n": back})
        conn.execute(text("DELETE FROM tlog_hashes WHERE level = 0 AND idx >= :n"), {"n": back})
        conn.execute(text("DELETE FROM tlog_roots WHERE size > :n"), {"n": back})
    other = LogTree(SqlLogStore(engine), edges=Edges())  # a replica that keeps roots too
    other.extend([b"another history %d" % i for i in range(back, kept + grown)])
    answer = provision()
    size, root = _checkpoint(answer["log_bundle"]["checkpoint"])
    fresh = LogTree(SqlLogStore(engine))
    assert (size, root) == (fresh.size(), fresh.root(fresh.size()))
    for entry in answer["log_bundle"]["entries"]:
        proof = [base64.b64decode(h) for h in entry["proof"]]
        assert proof == fresh.inclusion_proof(entry["index"], size)


def _checkpoint(note: str) -> tuple[int, bytes]:
    lines = note.split("\n")
    return int(lines[1]), base64.b64decode(lines[2])

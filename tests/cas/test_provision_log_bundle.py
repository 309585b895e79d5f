"""A provisioning answer asked for with ``?log_from=`` carries its log proofs, and one whose
proofs cannot be built still answers the committed decision, without them (the client then
proves it against the log the usual way, which names the log's fault)."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from securetf.cas.api import create_app
from securetf.cas.translog import CasLog
from securetf.crypto import SigningKey
from securetf.log import Ed25519Signer, LogStoreError

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

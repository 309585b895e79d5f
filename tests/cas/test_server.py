"""The CAS as users meet it: an HTTPS server process, the CLI, kill -9, a machine in the middle."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from securetf.crypto.x509ca import EcKey, self_signed
from securetf.errors import AttestationError, AuthenticationError, UsageError
from tests.ports import free_port

from .server_support import CasProcess
from .store.conftest import raw_sql
from .support import MEASUREMENT


def _policy(alice: str, bob: str) -> str:
    return f"""
name: demo
version: 1
governance:
  owners:
    - {{name: alice, public_key: "{alice}"}}
    - {{name: bob, public_key: "{bob}"}}
  update_threshold: 2
tee: {{allow: [sim]}}
secrets:
  dataset-key: {{kind: volume-key, source: imported}}
  model-key: {{kind: volume-key, source: generated, export_to_owners: true}}
volumes:
  dataset: {{key: dataset-key}}
  model: {{key: model-key}}
services:
  train:
    measurement: "sha256:{MEASUREMENT.hex()}"
    command: [python, train.py]
    mounts:
      - {{volume: dataset, path: /data, mode: ro}}
      - {{volume: model, path: /model, mode: rw}}
"""


@pytest.fixture
def cas(tmp_path: Path, db_url: str) -> Iterator[CasProcess]:
    home = tmp_path / "home"
    home.mkdir()
    proc = CasProcess(data=tmp_path / "cas", home=home, port=free_port(), db=db_url)
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.slow
def test_owner_workflow_survives_kill_9(cas: CasProcess, tmp_path: Path) -> None:
    # Without attesting the CAS first, the CLI refuses to talk to it.
    refused = cas.cli("policy", "show", "demo", "--cas", cas.url, ok=False)
    assert refused.returncode == UsageError.exit_code
    assert "securetf cas attest" in refused.stderr
    # Simulated CAS evidence is refused unless the user allows it by name.
    strict = cas.cli("cas", "attest", "--cas", cas.url, ok=False)
    assert strict.returncode == AttestationError.exit_code
    out = cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
    assert "SIMULATED" in out.stderr
    # Owners, a policy with an imported key, an update that needs two signatures.
    alice = cas.cli("owner", "keygen", tmp_path / "alice.key").stdout.strip()
    bob = cas.cli("owner", "keygen", tmp_path / "bob.key").stdout.strip()
    (tmp_path / "policy.yaml").write_text(_policy(alice, bob))
    cas.cli("volume", "keygen", tmp_path / "dataset.key")
    applied = cas.cli(
        "policy",
        "apply",
        "--yes",
        tmp_path / "policy.yaml",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "alice.key",
        "--secret",
        f"dataset-key={tmp_path / 'dataset.key'}",
    )
    assert "version 1 is in force" in applied.stdout
    shown = json.loads(cas.cli("policy", "show", "demo", "--cas", cas.url, "--json").stdout)
    v2 = _policy(alice, bob).replace("version: 1", f'version: 2\npredecessor: "{shown["hash"]}"')
    v2 = v2.replace("command: [python, train.py]", "command: [python, train.py, --fast]")
    (tmp_path / "v2.yaml").write_text(v2)
    pending = cas.cli(
        "policy",
        "apply",
        "--yes",
        tmp_path / "v2.yaml",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "alice.key",
    )
    assert "pending: 1 of 2" in pending.stdout
    # Kill -9 in the middle of the governance flow: everything survives.
    cas.kill9()
    cas.start()
    cas.cli(
        "policy",
        "approve",
        "demo",
        "--version",
        "2",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "bob.key",
    )
    shown = json.loads(cas.cli("policy", "show", "demo", "--cas", cas.url, "--json").stdout)
    assert shown["version"] == 2
    assert shown["policy_yaml"] is None  # the YAML is for owners
    mine = cas.cli(
        "policy", "show", "demo", "--cas", cas.url, "--key", tmp_path / "bob.key", "--json"
    )
    assert "--fast" in json.loads(mine.stdout)["policy_yaml"]
    hist = cas.cli("policy", "history", "demo", "--cas", cas.url).stdout
    assert "v1" in hist
    assert "approved by" not in hist  # who approved is for owners
    owned = cas.cli("policy", "history", "demo", "--cas", cas.url, "--key", tmp_path / "bob.key")
    assert "approved by alice, bob" in owned.stdout
    # An owner fetches the exported model key; a non-exported key is refused.
    cas.cli(
        "secret",
        "get",
        "model-key",
        "--policy",
        "demo",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "bob.key",
        "--out",
        tmp_path / "model.key",
    )
    assert len((tmp_path / "model.key").read_bytes()) == 32
    assert (tmp_path / "model.key").stat().st_mode & 0o777 == 0o600
    no = cas.cli(
        "secret",
        "get",
        "dataset-key",
        "--policy",
        "demo",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "bob.key",
        "--out",
        tmp_path / "x.key",
        ok=False,
    )
    assert no.returncode == UsageError.exit_code
    assert "not exported" in no.stderr
    stranger = cas.cli("owner", "keygen", tmp_path / "eve.key")
    assert stranger.returncode == 0
    eve = cas.cli(
        "secret",
        "get",
        "model-key",
        "--policy",
        "demo",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "eve.key",
        "--out",
        tmp_path / "y.key",
        ok=False,
    )
    assert eve.returncode == UsageError.exit_code
    assert not (tmp_path / "y.key").exists()
    # The audit trail is intact across the kill and names every decision.
    audit = cas.cli(
        "audit",
        "verify",
        "--cas",
        cas.url,
        "--key",
        tmp_path / "alice.key",
        "--policy",
        "demo",
        "--show",
    )
    assert "audit chain ok" in audit.stdout
    for kind in ("policy.created", "policy.pending", "policy.updated", "secret.exported"):
        assert kind in audit.stdout
    # Without --policy: every policy the key owns.
    owned = cas.cli("audit", "verify", "--cas", cas.url, "--key", tmp_path / "bob.key")
    assert "of policy demo" in owned.stdout
    none = cas.cli("audit", "verify", "--cas", cas.url, "--key", tmp_path / "eve.key", ok=False)
    assert "owns no policy" in none.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_health_metrics_and_openapi(cas: CasProcess) -> None:
    with httpx.Client(verify=False) as http:  # noqa: S501 - public endpoints, content checked
        assert http.get(f"{cas.url}/healthz").json() == {"status": "ok"}
        http.post(f"{cas.url}/v1/nonce")
        assert "securetf_cas_requests" in http.get(f"{cas.url}/metrics").text
        for bad in ("%%%", "a", "QUFB"):  # not base64url, too short
            answer = http.get(f"{cas.url}/v1/identity", params={"nonce": bad})
            assert answer.status_code == 400, (bad, answer.text)
            assert "nonce" in answer.json()["error"]
        huge = http.post(f"{cas.url}/v1/policies", content=b"x" * (5 * 1024 * 1024))
        assert huge.status_code == 413
        paths = http.get(f"{cas.url}/openapi.json").json()["paths"]
        assert {"/v1/provision", "/v1/policies", "/v1/tags"} <= set(paths)


class _Mitm(BaseHTTPRequestHandler):
    """Answers /v1/identity with the real CAS's document, but over its own TLS certificate."""

    real_url = ""

    def do_GET(self) -> None:
        body = httpx.get(self.real_url + self.path, verify=False).content  # noqa: S501
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mitm(cas: CasProcess, tmp_path: Path) -> Iterator[str]:
    key = EcKey.generate()
    (tmp_path / "mitm.key").write_bytes(key.to_pem())
    (tmp_path / "mitm.crt").write_bytes(
        self_signed(key, "mitm", ["127.0.0.1"], now=time.time(), valid_days=1)
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "mitm.crt", tmp_path / "mitm.key")
    _Mitm.real_url = cas.url
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mitm)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_machine_in_the_middle_is_refused(cas: CasProcess, mitm: str) -> None:
    # 1. Attesting through the MITM: the evidence names another certificate than the one
    #    presented in the handshake.
    out = cas.cli("cas", "attest", "--cas", mitm, "--allow-sim", ok=False)
    assert out.returncode == AttestationError.exit_code
    assert "another certificate" in out.stderr
    # 2. A CAS pinned earlier, later impersonated at the same address: the pinned
    #    certificate fails the handshake, and the client, looking for a rotation of the
    #    pinned key (docs/cas.md, "Key rotation"), finds evidence of another certificate.
    cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
    pins = cas.home / "cas-pins"
    real = json.loads(next(pins.glob("*.json")).read_text())
    port = mitm.rsplit(":", 1)[1]
    (pins / f"127.0.0.1_{port}.json").write_text(json.dumps({**real, "url": mitm}))
    out = cas.cli("policy", "show", "demo", "--cas", mitm, ok=False)
    assert out.returncode == AttestationError.exit_code
    assert "another certificate" in out.stderr
    assert (
        json.loads((pins / f"127.0.0.1_{port}.json").read_text())["certificate_pem"]
        == (real["certificate_pem"])
    )  # the pin stays


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_wrong_expected_measurement_is_refused(cas: CasProcess) -> None:
    out = cas.cli(
        "cas",
        "attest",
        "--cas",
        cas.url,
        "--allow-sim",
        "--expect-measurement",
        "sha256:" + "00" * 32,
        ok=False,
    )
    assert out.returncode == AttestationError.exit_code
    assert "measurement" in out.stderr
    assert AuthenticationError.exit_code != out.returncode


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_forwarded_for_header_does_not_make_a_new_source(cas: CasProcess, db_url: str) -> None:
    """Attack (anonymous client on the CAS's host): each bad request names another address
    in X-Forwarded-For, to escape the per-source limit on audited refusals."""
    bad = {
        "policy": "demo",
        "service": "train",
        "tee": "sim",
        "evidence": "",
        "nonce": "",
        "tls_public_key": "",
        "box_public_key": "",
    }
    with httpx.Client(verify=False) as http:  # noqa: S501 - refusals only, status checked
        for i in range(15):
            headers = {"X-Forwarded-For": f"192.0.2.{i}"}
            answer = http.post(f"{cas.url}/v1/provision", json=bad, headers=headers)
            assert answer.status_code == 403, answer.text
    details = [
        json.loads(d)
        for (d,) in raw_sql(db_url, "SELECT detail FROM audit_log WHERE kind = 'provision.refused'")
    ]
    assert {d["source"] for d in details} == {"127.0.0.1"}
    assert len(details) == 10  # CasSettings().audit_refusals_per_source

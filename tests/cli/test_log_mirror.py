"""A static mirror of the CAS's log (C2SP tlog-tiles) served by a plain static file server:
clients verify against it exactly as against the CAS (#14 item 5)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from securetf.client import CasClient, load_pin
from securetf.errors import IntegrityError
from tests.cas.server_support import CasProcess, attested_cas
from tests.cas.support import DATASET, Owners, policy_yaml
from tests.cas.test_log_http import _seed
from tests.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[CasProcess]:
    with attested_cas(tmp_path) as proc:
        yield proc


class StaticServer:
    """``python -m http.server`` over a directory: nothing but files."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "checkpoint", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the static server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_clients_verify_against_a_static_mirror_as_against_the_cas(
    cas: CasProcess, tmp_path: Path
) -> None:
    owners = Owners()
    with CasClient(load_pin(cas.url, cas.home), home=cas.home) as client:
        client.apply_policy(policy_yaml(owners, threshold=1), owners.alice, DATASET)
    _seed(cas.data, 300, "filler", cas.home)  # full and partial tiles, two entry bundles
    mirror = tmp_path / "mirror"
    made = cas.cli("log", "mirror", "--cas", cas.url, mirror)
    assert "mirrored 302 entries" in made.stdout
    again = cas.cli("log", "mirror", "--cas", cas.url, mirror)
    assert "302 -> 302 entries (0 files written)" in again.stdout
    early = _copy(mirror, tmp_path / "early")  # the mirror as it is now
    _seed(cas.data, 5, "later", cas.home)
    assert "302 -> 307" in cas.cli("log", "mirror", "--cas", cas.url, mirror).stdout

    served = StaticServer(_copy(mirror, tmp_path / "served"))
    try:
        # The CLI, reading only the mirror: a consistent, proven log.
        url = served.url
        ok = cas.cli("log", "verify", "--cas", cas.url, "--mirror", url)
        assert "-> 307 entries, consistent" in ok.stdout
        listed = json.loads(
            cas.cli(
                "log", "entries", "--cas", cas.url, "--mirror", url, "--count", "2", "--json"
            ).stdout
        )
        assert [e["entry"]["type"] for e in listed["entries"]] == ["identity", "policy"]
        proved = json.loads(
            cas.cli("log", "prove", "300", "--cas", cas.url, "--mirror", url, "--json").stdout
        )
        assert proved["entry"]["i"] == 298
        # The SDK: the policy in force proven from the mirror.
        pin = load_pin(cas.url, cas.home)
        with CasClient(pin, home=cas.home, log_source=url) as client:
            assert client.policy("cancer").version == 1
        # A tampered bundle in the mirror (its last entry): the proof fails.
        bundle = tmp_path / "served" / "tile" / "entries" / "000"
        data = bytearray(bundle.read_bytes())
        data[-1] ^= 1
        bundle.write_bytes(bytes(data))
        bad = cas.cli("log", "prove", "255", "--cas", cas.url, "--mirror", url, ok=False)
        assert bad.returncode == IntegrityError.exit_code, bad.stderr
    finally:
        served.stop()

    # A mirror that shows an older log than this client saw: refused as a rollback.
    stale = StaticServer(early)
    try:
        old = cas.cli("log", "verify", "--cas", cas.url, "--mirror", stale.url, ok=False)
        assert old.returncode == IntegrityError.exit_code
        assert "rolled back" in old.stderr
    finally:
        stale.stop()

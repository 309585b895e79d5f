"""A real CAS process for end-to-end tests, and the CLI run as a user runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ports import free_port

EXE = [sys.executable, "-m", "securetf.cli.main"]


@dataclass
class CasProcess:
    data: Path
    home: Path
    port: int
    db: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_args: tuple[str, ...] = ()  # more ``cas serve`` options (--test-roots, --pccs...)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SECURETF_HOME": str(self.home)}

    def start(self) -> None:
        args = [
            *EXE,
            "cas",
            "serve",
            "--data-dir",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        if self.db:
            args += ["--db", self.db]
        args += self.extra_args
        # A file, not a pipe: nobody drains a pipe while the CAS runs, and a full one blocks it.
        log_path = self.log = self.home / f"cas-{self.port}.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the CAS exited: {log_path.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/healthz", verify=False, timeout=1)  # noqa: S501 - liveness only
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the CAS did not start within 30 s")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def cli(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*EXE, *map(str, args)], env=self.env(), capture_output=True, text=True, check=False
        )
        if ok and proc.returncode != 0:
            raise AssertionError(f"securetf {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc


@contextlib.contextmanager
def attested_cas(base: Path, extra_args: tuple[str, ...] = ()) -> Iterator[CasProcess]:
    """A CAS process with its data in ``base/cas``, attested by the CLI (``--allow-sim``),
    whose pin and sim platform key are in ``base/home``."""
    home = base / "home"
    home.mkdir()
    cas = CasProcess(data=base / "cas", home=home, port=free_port(), extra_args=extra_args)
    cas.start()
    try:
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        yield cas
    finally:
        cas.stop()

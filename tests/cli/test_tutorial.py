"""docs/tutorial.md stays true: its files are written and its commands run, in order, in an
empty directory, and every output line it shows appears in what the command printed
(``...`` standing for what differs on every run)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.runtime.support import VENV_BIN

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
FILE = re.compile(r"<!-- (file|append): (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)
CONSOLE = re.compile(r"```console\n(.*?)```", re.DOTALL)
STEP_TIMEOUT_S = 180


@dataclass
class Step:
    kind: str  # "file", "append" or "console"
    target: str = ""
    text: str = ""
    commands: list[tuple[str, list[str]]] = field(default_factory=list)


def steps(markdown: str) -> list[Step]:
    """The tutorial's files and console blocks, in the order a reader meets them."""
    found: list[tuple[int, Step]] = []
    for m in FILE.finditer(markdown):
        found.append((m.start(), Step(m.group(1), m.group(2), m.group(3))))
    for m in CONSOLE.finditer(markdown):
        step = Step("console")
        for line in m.group(1).splitlines():
            if line.startswith("$ "):
                step.commands.append((line[2:], []))
            elif line.strip():
                step.commands[-1][1].append(line.strip())
        found.append((m.start(), step))
    return [step for _, step in sorted(found, key=lambda pair: pair[0])]


def expect_lines(expected: list[str], output: str, command: str) -> None:
    """Each expected line matches an output line, in order (others may come between)."""
    lines = [line.strip() for line in output.splitlines()]
    at = 0
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), f"$ {command}\nexpected {want!r} in:\n{output}"
        at += 1


@dataclass
class Reader:
    """Someone following the tutorial in ``work``, with the ports free on this machine."""

    work: Path
    ports: dict[str, str]
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        path = f"{self.work / 'bin'}:{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {**os.environ, "PATH": path, "SECURETF_HOME": str(self.work / "home")}

    def local(self, text: str) -> str:
        for documented, here in self.ports.items():
            text = text.replace(documented, here)
        return text

    def write(self, step: Step) -> None:
        path = self.work / step.target
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if step.kind == "append" else "w") as f:
            f.write(self.local(step.text))

    def run(self, command: str, expected: list[str]) -> None:
        command = self.local(command)
        if command.endswith(" &"):
            log = self.work / f"background-{len(self.background)}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    ["bash", "-c", command[:-2]], cwd=self.work, env=self.env(),
                    stdout=out, stderr=out, start_new_session=True,
                )  # fmt: skip
            self.background.append(proc)
            if " cas serve " in f" {command}":
                self._wait_for(log, "listening", proc)
            return
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.work,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )  # fmt: skip  (one stream: the order a reader sees)
        output = done.stdout
        assert done.returncode == 0, f"$ {command}\nexit {done.returncode}:\n{output}"
        expect_lines([self.local(line) for line in expected], output, command)

    def _wait_for(self, log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while text not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"no {text!r} in {log}"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.background):  # the server before the CAS
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def reader() -> Iterator[Reader]:
    work = Path(f"/tmp/securetf-tutorial-{os.urandom(4).hex()}")
    (work / "bin").mkdir(parents=True)
    securetf = work / "bin" / "securetf"  # this checkout's CLI, as the installed script
    securetf.write_text(f'#!/bin/sh\nexec {sys.executable} -m securetf.cli.main "$@"\n')
    securetf.chmod(0o755)
    one = Reader(work, {"8081": str(free_port()), "8501": str(free_port())})
    try:
        yield one
    finally:
        one.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_the_tutorial_parses_into_files_and_commands() -> None:
    found = steps(TUTORIAL.read_text())
    commands = [c for s in found for c, _ in s.commands]
    assert {"my-model/train.py", "data/points.csv", "client.py", "policy.yaml"} <= {
        s.target for s in found if s.kind != "console"
    }
    assert any(c.startswith("securetf init ") for c in commands)
    assert any(c.startswith("securetf run ") and "--service serve" in c for c in commands)


@pytest.mark.slow
def test_the_tutorial_runs_as_written(reader: Reader) -> None:
    for step in steps(TUTORIAL.read_text()):
        if step.kind == "console":
            for command, expected in step.commands:
                reader.run(command, expected)
        else:
            reader.write(step)

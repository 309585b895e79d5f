"""Shared pieces of the runtime tests: a deployment (a real CAS, attested, and an owner),
jobs (a policy, its app, its sealed volumes) and ``securetf run`` as an operator runs it.

Every job gets its own policy at the CAS and its own directory
``/tmp/securetf-test-<random>``: the sealed volumes and the app; the volumes' mount points
are paths under it too, but only in the program's view (in its own memory /tmp). Test
programs report what they saw on their standard output, as ``@marker NAME JSON`` lines
(:func:`markers`): the one channel from the program to the operator that its
confinement leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from securetf.envimage import EnvImage
from securetf.runtime import measure, measurement_text
from securetf.shield.fs._shared_image import STATE as KEPT_STATE
from securetf.volume import VolumeKey, seal_tree
from tests.cas.server_support import EXE, CasProcess

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180

#: The programs the fast tests run, by their first argument. Each first reports that it
#: started (and from where) on its standard output.
PROGRAM = r"""
import hashlib, json, os, select, signal, sys, time

def mark(name, value=""):
    print(f"@marker {name} {json.dumps(value)}", flush=True)

data, model = os.environ["DATA_DIR"], os.environ["MODEL_DIR"]
mark("started", os.getcwd())
mode = sys.argv[1]
# Derived here, so the marker's text is in no file on the host unless the program wrote it.
MODEL_MARKER = "model-marker-" + hashlib.sha256(b"securetf runtime tests").hexdigest()

if mode == "ok":
    with open(os.path.join(data, "table.csv")) as f:
        assert "data-marker-" in f.read()
    out = os.path.join(model, "out.txt")
    runs = int(open(out).read().split()[1]) + 1 if os.path.exists(out) else 1
    with open(out, "w") as f:
        f.write(f"runs {runs} {MODEL_MARKER}\n")
    with open(os.path.join(model, "big.bin"), "wb") as f:
        f.write((MODEL_MARKER + "\n").encode() * 20000)
    print(f"ok run {runs}")
elif mode == "read-big":
    got, h = 0, hashlib.sha256()
    try:
        with open(os.path.join(data, "big.bin"), "rb", buffering=0) as f:
            while block := f.read(65536):
                got += len(block)
                h.update(block)
    except OSError as exc:
        mark("read", {"got": got, "sha256": h.hexdigest(), "errno": exc.errno})
        raise
    mark("read", {"got": got, "sha256": h.hexdigest(), "errno": 0})
elif mode == "kill":
    half = open(os.path.join(model, "out.txt"), "w")
    half.write("half-written\n")
    half.flush()
    big = open(os.path.join(model, "partial.bin"), "wb")
    big.write(os.urandom(12 * 1024 * 1024))  # past the writer's memory: chunks reach storage
    big.flush()
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "wait":
    with open("/proc/self/mounts") as f:
        mark("mounts", f.read())
    mark("ready")
    # The test says go on the standard input.
    if select.select([sys.stdin], [], [], 60)[0]:
        sys.stdin.readline()
else:
    sys.exit(f"unknown mode {mode}")
"""

#: Every service of a fast job: its command (each measured on its own).
SERVICES = {mode: ["python", "prog.py", mode] for mode in ("ok", "read-big", "kill", "wait")}


@dataclass
class Deployment:
    """A running CAS that the CLI has attested, and one owner's key."""

    cas: CasProcess
    owner_key: Path
    owner_public: str

    def cli(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cas.cli(*args, ok=ok)


@dataclass
class Job:
    """One policy at the CAS, with its app, sealed volumes and directories."""

    dep: Deployment
    name: str
    root: Path
    app: Path
    services: dict[str, list[str]]
    environment: dict[str, str] = field(default_factory=dict)
    allow: str = "sim"
    network: str = ""  # each service's ``network:`` section, as flow YAML
    tee_extra: str = ""  # more of the policy's ``tee:`` section, as flow YAML (", sgx: {...}")
    run_environment: dict[str, str] = field(default_factory=dict)  # the operator's, for run
    path: str | None = None  # each service's ``path`` (the program's PATH)
    tmpfs: str = ""  # each service's ``tmpfs:`` section, as flow YAML
    user: str = ""  # each service's ``user:`` section, as flow YAML
    output: dict[str, str] = field(default_factory=dict)  # service -> its ``output:`` (YAML)
    last: subprocess.CompletedProcess[str] | None = None  # of the latest :meth:`run`
    env_image: Path | None = None  # the image each service's env_image pins

    @property
    def data_mount(self) -> Path:
        return self.root / "mnt" / "data"

    @property
    def model_mount(self) -> Path:
        return self.root / "mnt" / "model"

    @property
    def sealed_data(self) -> Path:
        return self.root / "sealed-data"

    @property
    def sealed_model(self) -> Path:
        return self.root / "sealed-model"

    @property
    def dataset_key(self) -> Path:
        return self.root / "dataset.key"

    @property
    def policy_file(self) -> Path:
        return self.root / "policy.yaml"

    def policy_yaml(self) -> str:
        env = {
            "DATA_DIR": str(self.data_mount),
            "MODEL_DIR": str(self.model_mount),
            **self.environment,
        }
        lines = [
            f"name: {self.name}",
            "version: 1",
            "governance:",
            f'  owners: [{{name: alice, public_key: "{self.dep.owner_public}"}}]',
            "  update_threshold: 1",
            f"tee: {{allow: [{self.allow}]{self.tee_extra}}}",
            "secrets:",
            "  dataset-key: {kind: volume-key, source: imported}",
            "  model-key: {kind: volume-key, source: generated, export_to_owners: true}",
            "volumes:",
            "  dataset: {key: dataset-key}",
            "  model: {key: model-key}",
            "services:",
        ]
        for service, command in self.services.items():
            lines += [
                f"  {service}:",
                f'    measurement: "{self.measurement(command)}"',
                f"    command: {json.dumps(command)}",
                "    mounts:",
                f"      - {{volume: dataset, path: {self.data_mount}, mode: ro}}",
                f"      - {{volume: model, path: {self.model_mount}, mode: rw}}",
                f"    environment: {json.dumps(env)}",
            ]
            if self.network:
                lines.append(f"    network: {self.network}")
            if self.path is not None:
                lines.append(f"    path: {json.dumps(self.path)}")
            if self.tmpfs:
                lines.append(f"    tmpfs: {self.tmpfs}")
            if self.user:
                lines.append(f"    user: {self.user}")
            if self.env_image is not None:
                lines.append(f'    env_image: "{self.image_measurement()}"')
            if service in self.output:
                lines.append(f"    output: {self.output[service]}")
        return "\n".join(lines) + "\n"

    def image_measurement(self) -> str:
        if self.env_image is None:
            raise ValueError("the job has no environment image")
        image = EnvImage.open(self.env_image)
        try:
            return measurement_text(image.digest)
        finally:
            image.close()

    def measurement(self, command: Sequence[str]) -> str:
        if self.env_image is None:
            return measurement_text(measure(self.app, command, path=self.path))
        image = EnvImage.open(self.env_image)
        try:
            return measurement_text(measure(self.app, command, path=self.path, image=image))
        finally:
            image.close()

    def policy_measurement(self, service: str) -> str:
        """The ``sha256:`` measurement of ``service``'s app, as its policy names it."""
        return self.measurement(self.services[service])

    def apply(self, *, register: bool = True) -> None:
        """Apply the policy; then register the sealed dataset's state, as its owner does."""
        self.policy_file.write_text(self.policy_yaml())
        self.dep.cli(
            "policy",
            "apply",
            "--yes",
            self.policy_file,
            "--cas",
            self.dep.cas.url,
            "--key",
            self.dep.owner_key,
            "--secret",
            f"dataset-key={self.dataset_key}",
        )
        if register:
            self.register_dataset()

    def register_dataset(self) -> subprocess.CompletedProcess[str]:
        """``securetf volume register`` of the sealed dataset's current state."""
        return self.dep.cli(
            "volume",
            "register",
            self.sealed_data,
            "--policy",
            self.name,
            "--volume",
            "dataset",
            "--cas",
            self.dep.cas.url,
            "--key",
            self.dep.owner_key,
            "--key-file",
            self.dataset_key,
        )

    def run(
        self, service: str, *, extra: Sequence[str] = (), prefix: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """``securetf run`` as an operator runs it; afterwards nothing of it stays mounted."""
        proc = subprocess.run(
            [*prefix, *self.run_args(service), *extra],
            env=self.run_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        self.last = proc
        self.assert_nothing_left()
        return proc

    def run_args(self, service: str) -> list[str]:
        return [
            *EXE,
            "run",
            "--cas",
            self.dep.cas.url,
            "--policy",
            self.name,
            "--service",
            service,
            "--app",
            str(self.app),
            "--volume",
            f"dataset={self.sealed_data}",
            "--volume",
            f"model={self.sealed_model}",
            *(["--env-image", str(self.env_image)] if self.env_image is not None else []),
        ]

    @property
    def runtime_tmp(self) -> Path:
        """The runtime's TMPDIR, where it makes its work directory (of this job's runs only)."""
        return self.root / "runtime-tmp"

    def run_env(self) -> dict[str, str]:
        """The operator's environment (of which the program gets nothing)."""
        env = self.dep.cas.env()
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        return env | {"TMPDIR": str(self.runtime_tmp)} | self.run_environment

    def started(self) -> bool:
        """Whether the program of the latest :meth:`run` started."""
        return self.last is not None and "started" in markers(self.last.stdout)

    def assert_nothing_left(self) -> None:
        """No mount of the job in this (the host's) namespace; no work dir of the runtime
        (and no directory of the program's view) left on the host."""
        leftover = [
            m
            for m in mount_points()
            if m.startswith((str(self.root), "/run/securetf"))
            and not m.startswith(f"{KEPT_STATE}/")  # securetf env serve's, not the job's
        ]
        assert not leftover, f"left mounted: {leftover}"
        left = sorted(p.name for p in self.runtime_tmp.iterdir())
        assert not left, f"the runtime's work dir was left behind: {left}"
        assert not self.data_mount.exists()
        assert not self.model_mount.exists()

    def model_key(self) -> Path:
        """The model volume's key, fetched from the CAS as the owner."""
        out = self.root / "model.key"
        if not out.exists():
            self.dep.cli(
                "secret",
                "get",
                "model-key",
                "--policy",
                self.name,
                "--cas",
                self.dep.cas.url,
                "--key",
                self.dep.owner_key,
                "--out",
                out,
            )
        return out

    def model_tag(self, *, expect: str | None = None) -> str:
        """Verify every byte of the sealed model volume (at ``expect``); its tag."""
        args: list[str | Path] = ["volume", "verify", self.sealed_model, "--json"]
        args += ["--key-file", self.model_key()]
        if expect:
            args += ["--expect-tag", expect]
        report = json.loads(self.dep.cli(*args).stdout)
        tag: str = report["tag"]
        return tag


def markers(stdout: str) -> dict[str, object]:
    """What a test program reported: its ``@marker NAME JSON`` lines, by name."""
    found: dict[str, object] = {}
    for line in stdout.splitlines():
        if line.startswith("@marker "):
            _, name, value = line.split(" ", 2)
            found[name] = json.loads(value)
    return found


def mount_points() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f]


def make_job(
    dep: Deployment,
    *,
    app_files: Mapping[str, str],
    services: Mapping[str, list[str]],
    dataset: Mapping[str, bytes],
    environment: Mapping[str, str] | None = None,
    allow: str = "sim",
    network: str = "",
    apply: bool = True,
    tee_extra: str = "",
    run_environment: Mapping[str, str] | None = None,
    path: str | None = None,
    tmpfs: str = "",
    user: str = "",
    env_image: Path | None = None,
    output: Mapping[str, str] | None = None,
) -> Job:
    """Write the app, seal the dataset (its plaintext is then deleted), apply the policy."""
    root = Path("/tmp") / f"securetf-test-{os.urandom(6).hex()}"
    root.mkdir()
    job = Job(
        dep,
        name=f"t{os.urandom(5).hex()}",
        root=root,
        app=root / "app",
        services=dict(services),
        environment=dict(environment or {}),
        allow=allow,
        network=network,
        tee_extra=tee_extra,
        run_environment=dict(run_environment or {}),
        path=path,
        tmpfs=tmpfs,
        user=user,
        env_image=env_image,
        output=dict(output or {}),
    )
    job.app.mkdir()
    job.runtime_tmp.mkdir()
    for rel, text in app_files.items():
        (job.app / rel).write_text(text)
    plain = root / "plain-data"
    plain.mkdir()
    for rel, content in dataset.items():
        (plain / rel).write_bytes(content)
    key = VolumeKey.generate()
    fd = os.open(job.dataset_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.raw())
    seal_tree(plain, job.sealed_data, key)
    shutil.rmtree(plain)
    if apply:
        job.apply()
    return job


def find_plaintext(
    roots: Sequence[Path], needles: Sequence[bytes], since: float | None = None
) -> list[str]:
    """Every regular file under ``roots`` that holds one of ``needles``: 'path: needle'.

    With ``since`` (a ``time.time()``), only files whose inode changed at or after it are read:
    a write, rename or chmod sets the change time, and no program can set it back, so a file
    written by the run under test is never skipped (a second's slack covers the coarse clock
    file systems stamp with). This keeps a search of the host's shared
    scratch directories (/tmp, /dev/shm) to what the run could have written, instead of every
    byte other tests, databases and checkouts left there.
    """
    hits: list[str] = []
    overlap = max(len(n) for n in needles)
    for root in roots:
        for current, _dirs, names in os.walk(root, onerror=lambda _e: None):
            for name in names:
                path = os.path.join(current, name)
                try:
                    st = os.lstat(path)
                    old = since is not None and st.st_ctime < since - 1
                    if old or not stat.S_ISREG(st.st_mode):
                        continue
                    with open(path, "rb") as f:
                        tail = b""
                        while block := f.read(1 << 20):
                            window = tail + block
                            hits += [f"{path}: {n!r}" for n in needles if n in window]
                            tail = window[-overlap:]
                except OSError:
                    continue  # gone (another test's file) or unreadable: not this run's
    return sorted(set(hits))


def find_plaintext_on_host(
    private: Sequence[Path], needles: Sequence[bytes], since: float
) -> list[str]:
    """``needles`` in the run's own directories (all of them) or in the host's shared scratch
    directories (what changed there since ``since``)."""
    shared = find_plaintext([Path("/tmp"), Path("/dev/shm")], needles, since)
    return sorted(set(find_plaintext(private, needles) + shared))


def dataset_csv(marker: str, rows: int = 200) -> bytes:
    """A small CSV table whose second line holds ``marker`` (a known plaintext)."""
    lines = ["id,value", f"0,{marker}"] + [f"{i},{i * i}" for i in range(1, rows)]
    return ("\n".join(lines) + "\n").encode()


def fast_job_args(
    data_marker: str | None = None, extra: Mapping[str, bytes] | None = None
) -> dict[str, object]:
    """make_job's arguments for a job running the small programs of :data:`PROGRAM`."""
    marker = data_marker or f"data-marker-{os.urandom(8).hex()}"
    return {
        "app_files": {"prog.py": PROGRAM},
        "services": SERVICES,
        "dataset": {"table.csv": dataset_csv(marker), **(extra or {})},
    }


def single_owner_header(dep: Deployment, name: str) -> str:
    """The start of a test policy: one owner (the deployment's), sim allowed."""
    return f"""
name: {name}
version: 1
governance:
  owners: [{{name: alice, public_key: "{dep.owner_public}"}}]
  update_threshold: 1
tee: {{allow: [sim]}}
"""

"""Every refusal a user meets on the way through the demo's flow (attest, keys, seal,
measure, apply, register, run, fetch the model) exits non-zero and says what to do next:
each message is checked for the action it names (a command, an option, an edit)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from securetf.errors import (
    AttestationError,
    AuthenticationError,
    IntegrityError,
    PolicyError,
    UsageError,
)
from tests.cas.server_support import EXE, CasProcess, attested_cas
from tests.runtime.support import (
    PROGRAM,
    RUN_TIMEOUT_S,
    SERVICES,
    Deployment,
    Job,
    dataset_csv,
    make_job,
)


@dataclass
class Flow:
    cas: CasProcess
    job: Job
    tmp: Path

    def cli(
        self, *args: str | Path, home: Path | None = None, stdin: int | None = subprocess.DEVNULL
    ) -> subprocess.CompletedProcess[str]:
        env = self.job.run_env()
        if home is not None:
            env["SECURETF_HOME"] = str(home)
        return subprocess.run(
            [*EXE, *map(str, args)],
            env=env,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    def run(self, service: str, *, app: Path | None = None, **volumes: Path) -> list[str]:
        args = self.job.run_args(service)
        if app is not None:
            args[args.index(str(self.job.app))] = str(app)
        for name, path in volumes.items():
            at = next(i for i, a in enumerate(args) if a.startswith(f"{name}="))
            args[at] = f"{name}={path}"
        return args[len(EXE) :]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    base = tmp_path_factory.mktemp("refusals")
    with attested_cas(base) as cas:
        public = cas.cli("owner", "keygen", base / "alice.key").stdout.strip()
        job = make_job(
            Deployment(cas, base / "alice.key", public),
            app_files={"prog.py": PROGRAM},
            services=SERVICES,
            dataset={"table.csv": dataset_csv("data-marker-refusals")},
        )
        try:
            yield Flow(cas, job, base)
        finally:
            subprocess.run(["rm", "-rf", str(job.root)], check=False)


def _refused(proc: subprocess.CompletedProcess[str], code: int, *actions: str) -> str:
    """The refusal exits ``code`` with a message on stderr that names every one of
    ``actions``; nothing of it is a Python traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for action in actions:
        assert action in proc.stderr, f"{action!r} not in:\n{proc.stderr}"
    return proc.stderr


def test_each_refusal_of_the_owners_steps_names_what_to_do(flow: Flow) -> None:
    job, url, tmp = flow.job, flow.cas.url, flow.tmp
    key = ["--key", str(job.dep.owner_key)]
    # 1. A CAS not yet attested from this machine.
    (fresh := tmp / "fresh-home").mkdir(exist_ok=True)
    proc = flow.cli("policy", "show", job.name, "--cas", url, home=fresh)
    _refused(proc, UsageError.exit_code, f"securetf cas attest --cas {url}")
    # 2. Simulated evidence, not allowed by name.
    proc = flow.cli("cas", "attest", "--cas", url, home=fresh)
    _refused(proc, AttestationError.exit_code, "--allow-sim")
    # 3. Keys: never overwritten.
    proc = flow.cli("owner", "keygen", job.dep.owner_key)
    _refused(proc, UsageError.exit_code, "exists", "choose another path or remove it")
    proc = flow.cli("volume", "keygen", job.dataset_key)
    _refused(proc, UsageError.exit_code, "exists", "choose another path or remove it")
    proc = flow.cli("owner", "pubkey", tmp / "no.key")
    _refused(proc, UsageError.exit_code, "securetf owner keygen")
    # 4. Sealing onto an existing volume.
    (plain := tmp / "plain").mkdir(exist_ok=True)
    (plain / "a.csv").write_text("a\n")
    proc = flow.cli("volume", "seal", plain, job.sealed_data, "--key-file", job.dataset_key)
    _refused(proc, UsageError.exit_code, "exists", "seal into a new path")
    # 5. Measuring a service the policy does not have.
    proc = flow.cli("measure", "--policy", job.policy_file, "--service", "nope", "--app", job.app)
    _refused(proc, UsageError.exit_code, "services: kill, ok, read-big, wait")
    # 6. Applying: a misspelt key, a missing imported secret, no --yes without a terminal,
    #    a version already in force, a key that is not an owner's.
    bad = tmp / "bad.yaml"
    bad.write_text(job.policy_file.read_text().replace("environment:", "enviroment:"))
    proc = flow.cli("policy", "apply", bad, "--cas", url, *key, "--yes")
    _refused(proc, PolicyError.exit_code, "enviroment", "check its spelling")
    lean = tmp / "lean.yaml"
    lean.write_text(_without_version(job.policy_file.read_text()))
    new = tmp / "new.yaml"
    new.write_text(lean.read_text().replace(f"name: {job.name}", f"name: {job.name}-new"))
    proc = flow.cli("policy", "apply", new, "--cas", url, *key, "--yes")
    _refused(proc, PolicyError.exit_code, "--secret dataset-key=KEYFILE")
    secret = ["--secret", f"dataset-key={job.dataset_key}"]
    proc = flow.cli("policy", "apply", lean, "--cas", url, *key, *secret)
    _refused(proc, UsageError.exit_code, "pass --yes")
    proc = flow.cli("policy", "apply", job.policy_file, "--cas", url, *key, *secret, "--yes")
    _refused(proc, PolicyError.exit_code, "remove the 'version' and 'predecessor' lines")
    flow.cli("owner", "keygen", mallory := tmp / "mallory.key")
    proc = flow.cli("policy", "apply", lean, "--cas", url, "--key", mallory, *secret, "--yes")
    _refused(proc, UsageError.exit_code, "check that you used your owner key")
    # 7. Fetching a key the policy does not export to owners.
    get = ["secret", "get", "dataset-key", "--policy", job.name, "--out", str(tmp / "ds.key")]
    proc = flow.cli(*get, "--cas", url, *key)
    _refused(proc, UsageError.exit_code, "export_to_owners: true")
    # 8. Unsealing with the wrong key.
    wrong = tmp / "wrong.key"
    if not wrong.exists():
        flow.cli("volume", "keygen", wrong)
    proc = flow.cli("volume", "unseal", job.sealed_data, tmp / "out", "--key-file", wrong)
    _refused(proc, AuthenticationError.exit_code, "use the key file the volume was sealed with")


def _without_version(text: str) -> str:
    keep = [x for x in text.splitlines(keepends=True) if not x.startswith(("version:", "pred"))]
    return "".join(keep)


def test_each_refusal_of_the_operators_run_names_what_to_do(flow: Flow) -> None:
    job, url, tmp = flow.job, flow.cas.url, flow.tmp
    assert flow.cli(*flow.run("ok")).returncode == 0
    # 1. A service the policy does not have.
    proc = flow.cli(*flow.run("nope"))
    _refused(proc, UsageError.exit_code, "services: kill, ok, read-big, wait", "--service")
    # 2. A volume with no storage given.
    args = flow.run("ok")
    at = args.index(f"model={job.sealed_model}")
    proc = flow.cli(*args[: at - 1], *args[at + 1 :])
    _refused(proc, UsageError.exit_code, "--volume model=PATH")
    # 3. Changed code: the measurement as the policy writes it, and the commands that
    #    measure it and apply the policy (which fills in version and predecessor).
    changed = tmp / "changed-app"
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(job.app, changed)
    with open(changed / "prog.py", "a") as f:
        f.write("\n# changed\n")
    proc = flow.cli(*flow.run("ok", app=changed))
    err = _refused(
        proc,
        AttestationError.exit_code,
        "This run measured the app as sha256:",
        f"securetf measure --policy POLICY.yaml --service ok --app {changed}",
        f"securetf policy apply POLICY.yaml --cas {url} --key OWNER.key",
    )
    assert "version raised by one" not in err  # apply fills version and predecessor in
    # 4. An older copy of the model volume (the CAS's tag moved on).
    old = tmp / "old-model"
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(job.sealed_model, old)
    assert flow.cli(*flow.run("ok")).returncode == 0
    proc = flow.cli(*flow.run("ok", model=old))
    _refused(proc, IntegrityError.exit_code, "rolled back", "the latest copy")
    # 5. A dataset changed after its owner registered it.
    more = tmp / "more.csv"
    more.write_text("id\n1\n")
    flow.cli("volume", "put", job.sealed_data, more, "more.csv", "--key-file", job.dataset_key)
    proc = flow.cli(*flow.run("ok"))
    _refused(proc, IntegrityError.exit_code, f"securetf volume register {job.sealed_data}")
    # 6. A TEE this machine does not have.
    proc = flow.cli(*flow.run("ok"), "--tee", "tdx")
    _refused(proc, AttestationError.exit_code, "choose --tee sim for development")

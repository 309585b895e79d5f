"""``make demo``: the main securetf job end to end on embedded defaults.

``make demo TEE=sgx|tdx|sev-snp`` runs it on emulated hardware instead of the simulated
TEE: an emulated machine of that kind (test PKI, device behind the real producer
interface, local PCCS or KDS) on which the CAS and the runtime both attest; the CAS takes
collateral from the local PCCS/KDS, and the policy names the emulated image's reference
values and ``test-roots``.

A CAS (SQLite, simulated TEE) starts; the data owner attests it, seals scikit-learn's
breast-cancer dataset, applies a policy and registers the sealed dataset's state; an
untrusted operator runs an unmodified Keras training program under ``securetf run``; the
owner fetches the model volume's key, unseals the model and evaluates it. Along the way, a
modified program is refused, a flipped bit in the sealed data is detected and an older
copy of the dataset is refused. It prints each command and exits non-zero if
any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
SECURETF = [sys.executable, "-m", "securetf.cli.main"]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
POLICY_NAME = "breast-cancer-training"
MARKER = "mean radius"  # a column name of the dataset: must never appear on the host


class DemoFailed(SystemExit):
    def __init__(self, why: str) -> None:
        super().__init__(f"\ndemo FAILED: {why}")


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def securetf(*args: str | Path, expect: int = 0, quiet: bool = False) -> str:
    print("$ securetf " + " ".join(str(a) for a in args), flush=True)
    proc = subprocess.run(
        [*SECURETF, *map(str, args)], env=ENV, capture_output=True, text=True, check=False
    )
    shown = "\n".join(
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "SIMULATED" not in line and "absl" not in line and "node_def_util" not in line
    )
    if shown and not quiet:
        print(shown, flush=True)
    if proc.returncode != expect:
        raise DemoFailed(f"exit code {proc.returncode}, expected {expect}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_dataset(directory: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    table = np.column_stack([data.data, data.target])
    header = ",".join([*data.feature_names, "label"])
    directory.mkdir()
    np.savetxt(
        directory / "breast_cancer.csv",
        table,
        delimiter=",",
        header=header,
        fmt="%.6g",
        comments="",
    )


POLICY = """\
name: {name}
version: 1
governance:
  owners: [{{name: alice, public_key: "{alice}"}}]
  update_threshold: 1
tee:
{tee}
secrets:
  dataset-key: {{kind: volume-key, source: imported}}
  model-key: {{kind: volume-key, source: generated, export_to_owners: true}}
volumes:
  dataset: {{key: dataset-key, rollback: protected}}
  model: {{key: model-key, rollback: protected}}
services:
  train:
    measurement: "{measurement}"
    command: [python, train.py]
    env_image: "{env_image}"     # Python and TensorFlow, measured: securetf env pack
    mounts:
      - {{volume: dataset, path: {data}, mode: ro}}
      - {{volume: model, path: {model}, mode: rw}}
    environment:
      DATA_DIR: "{data}"
      MODEL_DIR: "{model}"
      EPOCHS: "30"
      TF_CPP_MIN_LOG_LEVEL: "3"
  serve:
    measurement: "{serve_measurement}"
    command: [securetf, serve, --model-dir, "{model}/serving", --port, "{port}"]
    env_image: "{env_image}"
    mounts:
      - {{volume: model, path: {model}, mode: ro}}
    environment:
      TF_CPP_MIN_LOG_LEVEL: "3"
    network:
      public: [{port}]
"""


def _fingerprint(prefix: Path) -> str:
    """Names, sizes, modes and times of everything an image of ``prefix`` would hold."""
    from securetf.envimage import describe

    h = hashlib.sha256()
    for root in describe(prefix).roots:
        for current, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted([current, *(os.path.join(current, n) for n in names)]):
                st = os.lstat(name)
                h.update(f"{name}\0{st.st_size}\0{st.st_mode}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def environment_image() -> tuple[Path, str]:
    """The image of the Python environment the demo runs in, and its measurement.

    Packing takes a minute and a few GB, so the image is kept in build/ and packed again
    only when the environment changed."""
    build = ROOT.parent / "build"
    build.mkdir(exist_ok=True)
    image, stamp = build / "demo-env.img", build / "demo-env.fingerprint"
    prefix = Path(sys.prefix)
    fingerprint = _fingerprint(prefix)
    if image.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        print(f"(the environment is unchanged since {image} was packed: checking it)")
        return image, securetf("env", "measure", image).strip().splitlines()[-1]
    image.unlink(missing_ok=True)
    digest = securetf("env", "pack", prefix, image).strip().splitlines()[-1]
    stamp.write_text(fingerprint)
    return image, digest


def keep_mounted(image: Path, digest: str, work: Path, stack: contextlib.ExitStack) -> None:
    """The operator keeps the image mounted for the demo's runs (securetf env serve): its
    chunks are checked once, when first read, not again in each run."""
    args = ["env", "serve", str(image), "--expect", digest]
    print("$ securetf " + " ".join(args) + " &", flush=True)
    log = open(work / "env-serve.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    server = subprocess.Popen([*SECURETF, *args], env=ENV, stdout=subprocess.PIPE, stderr=log)
    stack.callback(_stop, server, 120)  # it waits for runs still using the image
    if server.stdout is None or not server.stdout.readline().startswith(b"sha256:"):
        server.wait(30)
        raise DemoFailed(f"securetf env serve failed: {(work / 'env-serve.log').read_text()}")
    print("the image stays mounted, checked as read, for every run below")


def test_split(dataset: Path) -> tuple[Any, Any]:
    import numpy as np

    table = np.loadtxt(dataset / "breast_cancer.csv", delimiter=",", skiprows=1)
    split = int(0.8 * len(table))
    return table[split:, :-1].astype("float32"), table[split:, -1]


def evaluate(model_dir: Path, dataset: Path) -> tuple[float, Any]:
    """The owner's own accuracy of the model, and its predictions on the test split."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    model = tf.keras.models.load_model(model_dir / "model.keras")
    x, y = test_split(dataset)
    scores = model.predict(x, verbose=0)[:, 0]
    return float(((scores > 0.5) == y).mean()), scores


def serve_and_query(run: list[str | Path], url: str, port: int, work: Path) -> Any:
    """Run `securetf serve` under the runtime; query it only after verifying it."""
    from securetf.client import CasClient
    from securetf.client.serving import ServingClient
    from securetf.errors import UsageError

    os.environ["SECURETF_HOME"] = ENV["SECURETF_HOME"]
    print("$ securetf " + " ".join(str(a) for a in run) + " &", flush=True)
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([*SECURETF, *map(str, run)], env=ENV, stdout=log, stderr=log)
    try:
        with CasClient.for_url(url) as cas:
            client = ServingClient.from_cas(
                cas, f"https://127.0.0.1:{port}", policy=POLICY_NAME, service="serve"
            )
        for _ in range(600):
            if server.poll() is not None:
                raise DemoFailed(f"the server exited: {(work / 'serve.log').read_text()[-2000:]}")
            try:
                client.verify()  # a wrong certificate raises at once
                break
            except UsageError:  # not listening yet
                time.sleep(0.2)
        else:
            raise DemoFailed("the server did not start within two minutes")
        print("server verified: its certificate chains to the policy's CA and names serve")
        x, _ = test_split(work / "data")
        with client:
            return client.predict("breast_cancer", x)
    finally:
        server.terminate()  # the runtime forwards it to the server, then unmounts
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise DemoFailed("the serving run did not stop within a minute") from None
        finally:
            log.close()


class Tee:
    """The TEE the demo runs on: sim, or an emulated machine (sgx, tdx, sev-snp)."""

    def __init__(self, name: str, work: Path, stack: contextlib.ExitStack) -> None:
        self.name = name
        self.serve_args: list[str] = ["--tee", name]
        self.attest_args: list[str | Path] = ["--allow-sim"]
        self.run_args: list[str] = ["--tee", name]
        self.policy = "  allow: [sim]            # development only: named explicitly"
        if name == "sim":
            return
        from securetf.attestation.emulated import hardware

        hw = work / "hardware"
        hardware.create(hw)
        machine = stack.enter_context(hardware.EmulatedMachine(hw, name, work / "device"))
        ENV.update(machine.environment())
        service = ["--pccs", machine.pccs_url] if machine.pccs_url else []
        service += ["--kds", machine.kds_url] if machine.kds_url else []
        roots = ["--test-roots", str(hw / "roots")]
        reference = machine.reference()
        (work / "reference.json").write_text(json.dumps(reference, indent=2))
        self.serve_args += [*roots, *service]
        self.attest_args = [*roots, *service, "--expect-reference", work / "reference.json"]
        self.policy = (
            f"  allow: [{name}, test-roots]   # emulated hardware: test roots, named explicitly\n"
            f"  {name}: {json.dumps(reference)}"
        )
        print(f"emulated {name} machine: device {machine.device_root}, PCCS/KDS {service[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo")
    parser.add_argument("--tee", choices=["sim", "sgx", "tdx", "sev-snp"], default="sim")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="securetf-demo-"))
    ENV["SECURETF_HOME"] = str(work / "home")
    url = f"https://127.0.0.1:{free_port()}"
    stack = contextlib.ExitStack()
    cas_log = open(work / "cas.log", "wb")  # noqa: SIM115 - closed in finally
    stack.callback(cas_log.close)
    try:
        tee = Tee(args.tee, work, stack)
        serve = [*SECURETF, "cas", "serve", "--data-dir", str(work / "cas"), "--listen", url[8:]]
        cas = subprocess.Popen([*serve, *tee.serve_args], env=ENV, stdout=cas_log, stderr=cas_log)
        stack.callback(_stop, cas)
        what = "simulated TEE" if tee.name == "sim" else f"emulated {tee.name}"
        step(f"1. a CAS starts (SQLite, {what}); the owner verifies it before trusting it")
        for _ in range(150):
            if "listening" in (work / "cas.log").read_text():
                break
            if cas.poll() is not None:
                raise DemoFailed(f"the CAS exited: {(work / 'cas.log').read_text()[-2000:]}")
            time.sleep(0.1)
        securetf("cas", "attest", "--cas", url, *tee.attest_args)

        step("2. the owner seals the breast-cancer dataset")
        write_dataset(work / "data")
        alice = securetf("owner", "keygen", work / "alice.key").strip()
        securetf("volume", "keygen", work / "dataset.key")
        securetf(
            "volume",
            "seal",
            work / "data",
            work / "sealed-dataset",
            "--key-file",
            work / "dataset.key",
        )

        step("3. the owner packs the Python environment into a measured, read-only image")
        env_image, env_digest = environment_image()
        keep_mounted(env_image, env_digest, work, stack)

        step("4. the owner measures both programs, applies a signed policy, registers the data")
        mounts, zero, serve_port = work / "mnt", "sha256:" + "0" * 64, free_port()
        policy = work / "policy.yaml"
        text = POLICY.format(
            tee=tee.policy,
            name=POLICY_NAME,
            alice=alice,
            measurement=zero,
            serve_measurement=zero,
            data=mounts / "data",
            model=mounts / "model",
            port=serve_port,
            env_image=env_digest,
        )
        policy.write_text(text)
        for service, app in (("train", ROOT / "app"), ("serve", ROOT / "serve_app")):
            digest = securetf(
                "measure",
                "--app",
                app,
                "--policy",
                policy,
                "--service",
                service,
                "--env-image",
                env_image,
            )
            text = text.replace(f'measurement: "{zero}"', f'measurement: "{digest.strip()}"', 1)
        policy.write_text(text)
        securetf(
            "policy",
            "apply",
            "--yes",
            work / "policy.yaml",
            "--cas",
            url,
            "--key",
            work / "alice.key",
            "--secret",
            f"dataset-key={work / 'dataset.key'}",
        )
        register: list[str | Path] = ["volume", "register", work / "sealed-dataset"]
        register += ["--policy", POLICY_NAME, "--volume", "dataset", "--cas", url]
        register += ["--key", work / "alice.key", "--key-file", work / "dataset.key"]
        securetf(*register)  # rollback: protected opens only the state the owner registered

        step("5. an operator who is not trusted runs the unmodified Keras program on the image")
        run: list[str | Path] = [
            "run",
            "--cas",
            url,
            "--policy",
            POLICY_NAME,
            "--service",
            "train",
            "--app",
            ROOT / "app",
            "--volume",
            f"dataset={work / 'sealed-dataset'}",
            "--volume",
            f"model={work / 'sealed-model'}",
            "--env-image",
            env_image,
            *tee.run_args,
        ]
        securetf(*run)

        step("6. nothing readable reached the host: only random-named ciphertext")
        for directory in (work / "sealed-dataset", work / "sealed-model", mounts):
            for path in directory.rglob("*"):
                if path.is_file() and MARKER.encode() in path.read_bytes():
                    raise DemoFailed(f"plaintext found in {path}")
        print(f"searched the sealed volumes and {mounts} for the dataset's text: not found")

        step("7. a modified program is refused before it starts")
        tampered = work / "tampered-app"
        shutil.copytree(ROOT / "app", tampered)
        with open(tampered / "train.py", "a") as f:
            f.write(
                "\nopen('/tmp/stolen.csv', 'w').write(open(DATA + '/breast_cancer.csv').read())\n"
            )
        securetf(*[tampered if a == ROOT / "app" else a for a in run], expect=5)

        step("8. storage flips one bit of the sealed dataset: the program gets an I/O error")
        obj = max(
            (p for p in (work / "sealed-dataset").rglob("*") if p.is_file()),
            key=lambda p: p.stat().st_size,
        )
        original = obj.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 1
        obj.write_bytes(flipped)
        securetf(*run, expect=1, quiet=True)
        print("the run failed: reading the tampered chunk gave the program an I/O error")
        obj.write_bytes(original)

        step("9. the owner updates the dataset; storage serves the copy from before: refused")
        shutil.copytree(work / "sealed-dataset", work / "old-dataset")
        (work / "DATA-CARD.txt").write_text("breast cancer wisconsin (diagnostic), 569 rows\n")
        securetf(
            "volume",
            "put",
            work / "sealed-dataset",
            work / "DATA-CARD.txt",
            "DATA-CARD.txt",
            "--key-file",
            work / "dataset.key",
        )
        securetf(*register)
        old = [
            f"dataset={work / 'old-dataset'}" if str(a).startswith("dataset=") else a for a in run
        ]
        securetf(*old, expect=3)

        step("10. the owner fetches the model key, unseals the model and evaluates it")
        securetf(
            "secret",
            "get",
            "model-key",
            "--policy",
            POLICY_NAME,
            "--cas",
            url,
            "--key",
            work / "alice.key",
            "--out",
            work / "model.key",
        )
        securetf(
            "volume",
            "unseal",
            work / "sealed-model",
            work / "model",
            "--key-file",
            work / "model.key",
        )
        metrics = json.loads((work / "model" / "metrics.json").read_text())
        accuracy, local_scores = evaluate(work / "model", work / "data")
        reported = metrics["test_accuracy"]
        print(f"held-out accuracy, measured by the owner: {accuracy:.3f} (reported {reported:.3f})")
        if accuracy < 0.9:
            raise DemoFailed(f"accuracy {accuracy:.3f} is too low")

        step("11. the model is served from its sealed volume; a client verifies the server first")
        serve_run: list[str | Path] = [
            "run",
            "--cas",
            url,
            "--policy",
            POLICY_NAME,
            "--service",
            "serve",
            "--app",
            ROOT / "serve_app",
            "--volume",
            f"model={work / 'sealed-model'}",
            "--env-image",
            env_image,
            *tee.run_args,
        ]
        served = serve_and_query(serve_run, url, serve_port, work)
        import numpy as np

        served_scores = np.asarray(served, dtype="float64").reshape(-1)
        if not np.allclose(served_scores, local_scores, atol=1e-5):
            raise DemoFailed("the served predictions differ from the model's own")
        print(f"{len(served_scores)} predictions over TLS equal the model's own")

        step("12. the owner checks the CAS's signed audit trail")
        securetf(
            "audit",
            "verify",
            "--cas",
            url,
            "--key",
            work / "alice.key",
            "--policy",
            POLICY_NAME,
            "--show",
        )
        print(f"\ndemo passed on {what}: final accuracy {accuracy:.3f}")
        return 0
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes], seconds: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())

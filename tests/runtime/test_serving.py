"""A model served from its sealed volume under `securetf run`: the client verifies the server
against the policy's CA first, predictions equal the model's own, and the model never
appears in plaintext on the host."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from securetf.client import CasClient, load_pin
from securetf.client.serving import ServingClient
from securetf.errors import AuthenticationError, UsageError
from tests.cas.server_support import EXE
from tests.ports import free_port

from .support import (
    VENV_BIN,
    Deployment,
    find_plaintext,
    find_plaintext_on_host,
    single_owner_header,
)

np = pytest.importorskip("numpy")
tf = pytest.importorskip("tensorflow")

MARKER = b"model-card-" + secrets.token_hex(8).encode()


def _policy(dep: Deployment, name: str, root: Path, measurement: str, port: int) -> str:
    model = root / "mnt" / "model"
    return (
        single_owner_header(dep, name)
        + f"""secrets:
  model-key: {{kind: volume-key, source: imported}}
volumes:
  model: {{key: model-key}}
services:
  serve:
    measurement: "{measurement}"
    command: [securetf, serve, --model-dir, "{model}", --port, "{port}"]
    mounts:
      - {{volume: model, path: {model}, mode: ro}}
    environment: {{TF_CPP_MIN_LOG_LEVEL: "3"}}
    network: {{public: [{port}]}}
"""
    )


@pytest.mark.slow
def test_served_from_a_sealed_volume_to_a_verifying_client(
    deployment: Deployment, root: Path
) -> None:
    dep, name, port = deployment, f"serve-{secrets.token_hex(3)}", free_port()
    started = time.time()
    # The owner builds a model, writes it in TensorFlow Serving's layout, seals it.
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(2)])
    version = root / "models" / "clf" / "1"
    version.mkdir(parents=True)
    model.save(version / "model.keras")
    (root / "models" / "clf" / "MODEL_CARD.txt").write_bytes(MARKER)
    x = np.random.default_rng(1).standard_normal((6, 5)).astype("float32")
    want = model(x).numpy()
    dep.cli("volume", "keygen", root / "model.key")
    dep.cli(
        "volume", "seal", root / "models", root / "sealed-model", "--key-file", root / "model.key"
    )
    (root / "app").mkdir()
    (root / "app" / "README").write_text("securetf serve runs from the package\n")
    policy = root / "policy.yaml"
    policy.write_text(_policy(dep, name, root, "sha256:" + "0" * 64, port))
    measured = dep.cli("measure", "--app", root / "app", "--policy", policy, "--service", "serve")
    policy.write_text(_policy(dep, name, root, measured.stdout.strip(), port))
    dep.cli(
        "policy",
        "apply",
        "--yes",
        policy,
        "--cas",
        dep.cas.url,
        "--key",
        dep.owner_key,
        "--secret",
        f"model-key={root / 'model.key'}",
    )
    dep.cli(
        "volume",
        "register",
        root / "sealed-model",
        "--policy",
        name,
        "--volume",
        "model",
        "--cas",
        dep.cas.url,
        "--key",
        dep.owner_key,
        "--key-file",
        root / "model.key",
    )
    env = {**dep.cas.env(), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    args = ["run", "--cas", dep.cas.url, "--policy", name, "--service", "serve"]
    args += ["--app", str(root / "app"), "--volume", f"model={root / 'sealed-model'}"]
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([*EXE, *args], env=env, stdout=log, stderr=log)
    try:
        with CasClient(load_pin(dep.cas.url, dep.cas.home), home=dep.cas.home) as cas:
            client = ServingClient.from_cas(
                cas, f"https://127.0.0.1:{port}", policy=name, service="serve"
            )
            wrong = ServingClient.from_cas(
                cas, f"https://127.0.0.1:{port}", policy=name, service="train"
            )
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (root / "serve.log").read_text()[-3000:]
            try:
                client.verify()
                break
            except UsageError:  # not listening yet
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)
        with client:
            got = np.asarray(client.predict("clf", x))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # A client that expects another service refuses this server before sending anything.
        with pytest.raises(AuthenticationError):
            wrong.predict("clf", x)
        wrong.close()
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    # The model card travelled only as ciphertext.
    assert find_plaintext([root / "models"], [MARKER])  # the owner's copy: the search works
    shutil.rmtree(root / "models")
    assert find_plaintext_on_host([root], [MARKER], started) == []

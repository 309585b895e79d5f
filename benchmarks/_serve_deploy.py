"""The two servers of the serving benchmark, and a client of each that does the same work.

- ``securetf serve`` under ``securetf run``: a CAS (SQLite, sim TEE) attested by the
  owner, the models sealed into a volume, a policy whose ``serve`` service mounts it
  read-only; the runtime attests, provisions the instance certificate and launches the
  server, which loads the models through the file system shield and answers over TLS. Its
  client is securetf's :class:`ServingClient`, which verifies the server against the
  policy's CA (as the attested CAS states it) and service name.
- The same ``securetf serve`` code on the plain model directory with ``--insecure-no-tls``,
  outside the runtime: no TLS, no attestation, no shield. Its clients send the same bytes
  the way a TensorFlow Serving client does (JSON over httpx, the official gRPC stub).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tests.cas.server_support import EXE, CasProcess
from tests.ports import free_port
from tests.runtime.support import VENV_BIN
from tests.serve.support import TlsPair

from benchmarks._serve_models import Array
from securetf.client import CasClient, ServingClient, load_pin
from securetf.errors import UsageError
from securetf.volume import VolumeKey, seal_tree

POLICY_SERVICE = "serve"
START_TIMEOUT_S = 300
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}
#: The plain gRPC channel's limits; the largest request (a 299x299x3 float image) is 1 MB.
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


@dataclass
class Deployment:
    """A CAS the owner has attested, the owner's key, and the serving policy applied."""

    root: Path
    cas: CasProcess
    owner_public: str
    policy: str = field(default_factory=lambda: f"bench-serve-{os.urandom(3).hex()}")
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def mount(self) -> Path:
        return self.root / "mnt" / "model"

    @property
    def sealed(self) -> Path:
        return self.root / "sealed-model"

    @classmethod
    def create(cls, root: Path) -> Deployment:
        home = root / "home"
        home.mkdir(parents=True)
        cas = CasProcess(data=root / "cas", home=home, port=free_port())
        cas.start()
        cas.cli("cas", "attest", "--cas", cas.url, "--allow-sim")
        public = cas.cli("owner", "keygen", root / "owner.key").stdout.strip()
        return cls(root, cas, public)

    def cli(self, *args: str | Path) -> str:
        return self.cas.cli(*args).stdout.strip()

    def _policy(self, measurement: str) -> str:
        command = ["securetf", "serve", "--model-dir", str(self.mount)]
        command += ["--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        return f"""name: {self.policy}
version: 1
governance:
  owners: [{{name: owner, public_key: "{self.owner_public}"}}]
  update_threshold: 1
tee: {{allow: [sim]}}
secrets:
  model-key: {{kind: volume-key, source: imported}}
volumes:
  model: {{key: model-key}}
services:
  {POLICY_SERVICE}:
    measurement: "{measurement}"
    command: {json.dumps(command)}
    mounts:
      - {{volume: model, path: {self.mount}, mode: ro}}
    environment: {json.dumps(ENV)}
    network: {{public: [{self.port}, {self.grpc_port}]}}
"""

    def seal_and_apply(self, models: Path) -> None:
        """The owner seals the model directory, applies the policy and registers the volume."""
        key = VolumeKey.generate()
        key_file = self.root / "model.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.raw())
        seal_tree(models, self.sealed, key)
        app = self.root / "app"
        app.mkdir()
        (app / "README").write_text("securetf serve runs from the installed package\n")
        policy = self.root / "policy.yaml"
        policy.write_text(self._policy("sha256:" + "0" * 64))
        measured = self.cli("measure", "--app", app, "--policy", policy, "--service", "serve")
        policy.write_text(self._policy(measured))
        apply = ["policy", "apply", "--yes", str(policy), "--cas", self.cas.url]
        self.cli(*apply, "--key", self.root / "owner.key", "--secret", f"model-key={key_file}")
        # rollback: protected: the server opens the models only in the state registered here.
        register = ["volume", "register", str(self.sealed), "--policy", self.policy]
        register += ["--volume", "model", "--cas", self.cas.url, "--key-file", str(key_file)]
        self.cli(*register, "--key", self.root / "owner.key")

    def launch(self) -> None:
        """``securetf run`` as an operator types it; the server starts loading its models."""
        env = {**self.cas.env(), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        args = [*EXE, "run", "--cas", self.cas.url, "--policy", self.policy]
        args += ["--service", POLICY_SERVICE, "--app", str(self.root / "app")]
        args += ["--volume", f"model={self.sealed}"]
        with open(self.root / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)

    def client(self) -> ServingClient:
        """securetf's client, trusting the policy CA the attested CAS names; once it is up."""
        with CasClient(load_pin(self.cas.url, self.cas.home), home=self.cas.home) as cas:
            client = ServingClient.from_cas(
                cas,
                f"https://127.0.0.1:{self.port}",
                policy=self.policy,
                service=POLICY_SERVICE,
                grpc_address=f"127.0.0.1:{self.grpc_port}",
                timeout=120.0,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"securetf run exited:\n{self._log_tail()}")
            try:
                client.verify()
                client.status("densenet121")  # REST answers once every model is loaded
                return client
            except UsageError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not come up:\n{self._log_tail()}") from None
                time.sleep(0.5)

    def _log_tail(self) -> str:
        return (self.root / "serve.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cas.stop()


class PlainRest:
    """TensorFlow Serving's REST predict as a client sends it: JSON rows over plain HTTP."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=120.0)

    def predict(self, model: str, x: Array) -> Array:
        body = json.dumps({"instances": x.tolist()}).encode()
        response = self._http.post(
            f"/v1/models/{model}:predict",
            content=body,
            headers={"content-type": "application/json"},
        )
        response.raise_for_status()
        return np.asarray(response.json()["predictions"], dtype=np.float32)

    def close(self) -> None:
        self._http.close()


class PlainGrpc:
    """``PredictionService/Predict`` through the official stub over an insecure channel."""

    def __init__(self, address: str) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._channel = grpc.insecure_channel(address, options=GRPC_OPTIONS)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, model: str, inputs: dict[str, Any]) -> Array:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "serving_default"
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._stub.Predict(request, timeout=120.0)
        (out,) = (tf.make_ndarray(v) for v in response.outputs.values())
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self._channel.close()


@dataclass
class LocalServer:
    """``securetf serve`` on the plain model directory, outside the runtime: without TLS
    (``--insecure-no-tls``, the plain server), or with a certificate of a test CA (to tell
    what TLS alone adds from what the runtime adds)."""

    model_dir: Path
    log: Path
    tls: TlsPair | None = None
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def launch(self) -> None:
        args = [*EXE, "serve", "--model-dir", str(self.model_dir), "--port", str(self.port)]
        args += ["--grpc-port", str(self.grpc_port)]
        if self.tls is None:
            args.append("--insecure-no-tls")
        else:
            args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env={**os.environ, **ENV}, stdout=log, stderr=log)

    def wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the local server exited:\n{self.log.read_text()[-3000:]}")
            try:
                # Liveness only; the clients verify the server.
                httpx.get(f"{self.url}/healthz", timeout=2, verify=False).raise_for_status()  # noqa: S501
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the local server did not come up") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

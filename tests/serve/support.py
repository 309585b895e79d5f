"""Test material for the model server: a test CA, small models of every format, a real server."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from securetf.crypto.x509ca import EcKey, issue_certificate, new_ca, self_signed
from tests.ports import free_port

EXE = [sys.executable, "-m", "securetf.cli.main"]
POLICY, SERVICE = "clinic", "classifier"
INPUT_DIM = 4


@dataclass(frozen=True)
class TlsPair:
    cert: Path
    key: Path


@dataclass
class TestCa:
    """A policy CA as the CAS would make one, issuing instance certificates like the CAS."""

    key: EcKey
    pem: bytes
    serial: int = 1

    @classmethod
    def create(cls, name: str = "policy CA") -> TestCa:
        key, pem = new_ca(name, now=time.time(), valid_days=1)
        return cls(key, pem)

    def instance(self, out: Path, service: str = SERVICE, policy: str = POLICY) -> TlsPair:
        """An instance certificate named as the runtime names them (``<service>.<policy>``)."""
        key = EcKey.generate()
        self.serial += 1
        cert = issue_certificate(
            self.key,
            self.pem,
            key.public_der(),
            common_name=f"{service}-0",
            organization=policy,
            alt_names=[f"{service}-0.{policy}", f"{service}.{policy}"],
            server=True,
            client=True,
            serial=self.serial,
            now=time.time(),
            valid_seconds=3600,
        )
        return _write(out, cert, key)


def self_signed_pair(out: Path, service: str = SERVICE, policy: str = POLICY) -> TlsPair:
    """A certificate naming the right service, signed by nobody but itself."""
    key = EcKey.generate()
    cert = self_signed(key, f"{service}-0", [f"{service}.{policy}"], now=time.time(), valid_days=1)
    return _write(out, cert, key)


def _write(out: Path, cert: bytes, key: EcKey) -> TlsPair:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls.crt").write_bytes(cert)
    (out / "tls.key").write_bytes(key.to_pem())
    (out / "tls.key").chmod(0o600)
    return TlsPair(out / "tls.crt", out / "tls.key")


# -- models ------------------------------------------------------------------------------
def dense_model(seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((INPUT_DIM,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


def two_input_model() -> Any:
    import keras

    keras.utils.set_random_seed(7)
    a = keras.Input((2,), name="a")
    b = keras.Input((3,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model(
        {"a": a, "b": b}, {"score": keras.layers.Dense(1)(joined), "twice": joined * 2}
    )


def strings_model(out: Path) -> None:
    """A SavedModel of one string input, ``data``: its byte lengths and the bytes back."""
    import tensorflow as tf

    class Echo(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
        def serve(self, data: Any) -> dict[str, Any]:
            return {"length": tf.strings.length(data), "echo_bytes": tf.identity(data)}

    echo = Echo()
    tf.saved_model.save(echo, str(out), signatures={"serving_default": echo.serve})


#: Most images the ``images`` model takes in one request; its refusal names its own path.
MAX_IMAGES = 8


def kinds_model(out: Path) -> None:
    """A SavedModel of one float input, ``x`` [?, 4], with an output of each common dtype."""
    import tensorflow as tf

    class Kinds(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {
                "scores": x * 2.0,
                "label": tf.argmax(x, axis=1),  # int64
                "count": tf.cast(tf.reduce_sum(tf.cast(x > 0, tf.int32), axis=1), tf.int32),
                "positive": x[:, 0] > 0,
                "total": tf.reduce_sum(tf.cast(x, tf.float64), axis=1),
                "sign": tf.where(x[:, 0] > 0, b"plus", b"minus"),
            }

    kinds = Kinds()
    tf.saved_model.save(kinds, str(out), signatures={"serving_default": kinds.serve})


def images_model(out: Path, *, batched: bool) -> None:
    """A SavedModel that decodes JPEG/PNG bytes (``image_bytes``) and answers each image's
    mean colour (``mean_rgb``) and its brightest channel (``channel``, int64).

    Batched: a [?] string input, as TF Serving's ResNet client sends; else one scalar
    string, as its JPEG-era client sent. Refuses more than ``MAX_IMAGES`` images with a
    message that names the model's directory (a server path a client must not see).
    """
    import tensorflow as tf

    def one(data: Any) -> Any:
        pixels = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        return tf.reduce_mean(pixels, axis=[0, 1])

    shape = [None] if batched else []

    class Images(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec(shape, tf.string, name="image_bytes")])
        def serve(self, data: Any) -> dict[str, Any]:
            if batched:
                check = tf.debugging.assert_less_equal(
                    tf.size(data),
                    MAX_IMAGES,
                    message=f"at most {MAX_IMAGES} images per request (model in {out})",
                )
                # Decoding waits for the check: else which of the two refuses a batch of
                # too many undecodable images first is a race.
                with tf.control_dependencies([check]):
                    data = tf.identity(data)
                mean = tf.map_fn(one, data, fn_output_signature=tf.float32)
                channel = tf.argmax(mean, axis=1)
            else:
                mean = one(data)
                channel = tf.argmax(mean)
            return {"mean_rgb": mean, "channel": channel}

    images = Images()
    tf.saved_model.save(images, str(out), signatures={"serving_default": images.serve})


#: The ``census`` model's weights: logits = (x @ WEIGHTS) * scale, value = sum(x) * scale.
WEIGHTS = [[1.0, -1.0], [0.5, 2.0]]
LABELS = [b"neg", b"pos"]


def examples_model(out: Path) -> None:
    """A TF1-style SavedModel over serialized ``tf.Example``s, as an Estimator exports one.

    Features ``x`` (two floats) and ``scale`` (one float, default 1). Signatures:
    ``serving_default`` and ``classify_x`` (classify: ``classes``, ``scores``),
    ``regress_x`` (regress: ``outputs``), ``predict_x`` (predict over the same examples).
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        spec = {
            "x": tf.io.FixedLenFeature([2], tf.float32),
            "scale": tf.io.FixedLenFeature([1], tf.float32, default_value=[1.0]),
        }
        features = tf.io.parse_example(serialized, spec)
        x, scale = features["x"], features["scale"]
        logits = tf.matmul(x, tf.constant(WEIGHTS)) * scale
        scores = tf.nn.softmax(logits)
        classes = tf.tile(tf.constant([LABELS]), [tf.shape(x)[0], 1])
        value = tf.reduce_sum(x, axis=1) * tf.squeeze(scale, axis=1)
        defs = v1.saved_model.signature_def_utils
        classify = defs.classification_signature_def(serialized, classes, scores)
        builder = v1.saved_model.Builder(str(out))
        with v1.Session() as session:
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={
                    "serving_default": classify,
                    "classify_x": classify,
                    "regress_x": defs.regression_signature_def(serialized, value),
                    "predict_x": defs.predict_signature_def(
                        {"examples": serialized}, {"logits": logits}
                    ),
                },
            )
        builder.save()


def build_models(root: Path) -> None:
    """``dense`` (SavedModel v1, v2), ``kdense`` (.keras), ``ldense`` (.tflite), ``multi``,
    ``strings`` (a string input, SavedModel), ``kinds`` (outputs of every common dtype),
    ``images`` and ``image`` (JPEG bytes in, batched and scalar), ``census`` (classify and
    regress over tf.Examples)."""
    import tensorflow as tf

    v1, v2 = dense_model(1), dense_model(2)
    v1.export(str(root / "dense" / "1"), verbose=False)
    v2.export(str(root / "dense" / "2"), verbose=False)
    (root / "kdense" / "3").mkdir(parents=True)
    v1.save(root / "kdense" / "3" / "model.keras")
    (root / "ldense" / "1").mkdir(parents=True)
    tflite = tf.lite.TFLiteConverter.from_keras_model(v1).convert()
    (root / "ldense" / "1" / "model.tflite").write_bytes(tflite)
    (root / "multi" / "1").mkdir(parents=True)
    two_input_model().save(root / "multi" / "1" / "model.keras")
    strings_model(root / "strings" / "1")
    kinds_model(root / "kinds" / "1")
    images_model(root / "images" / "1", batched=True)
    images_model(root / "image" / "1", batched=False)
    examples_model(root / "census" / "1")


# -- a real server -----------------------------------------------------------------------
@dataclass
class ServerProcess:
    model_dir: Path
    tls: TlsPair | None
    ca_pem: bytes | None
    log: Path
    extra: list[str] = field(default_factory=list)
    client: TlsPair | None = None  # the certificate its own checks present (--client-ca)
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def http(self) -> httpx.Client:
        """A client for checks of the server itself (not the SDK under test)."""
        if self.ca_pem is None:
            return httpx.Client(base_url=self.url, timeout=30)
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        ctx.check_hostname = False  # the SDK's own name check is tested on its own
        if self.client is not None:
            ctx.load_cert_chain(self.client.cert, self.client.key)
        return httpx.Client(base_url=self.url, verify=ctx, timeout=30)

    def start(self, env: dict[str, str] | None = None) -> None:
        args = [*EXE, "serve", "--model-dir", str(self.model_dir), "--port", str(self.port)]
        args += ["--grpc-port", str(self.grpc_port), *self.extra]
        if self.tls is not None and env is None:
            args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args, env={**os.environ, **(env or {})}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 90
        with self.http() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
                try:
                    http.get("/healthz", timeout=1)
                    return
                except httpx.HTTPError:
                    time.sleep(0.2)
        raise RuntimeError("the server did not start within 90 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_server(
    model_dir: Path, ca: TestCa, tmp: Path, extra: list[str]
) -> Iterator[ServerProcess]:
    """``securetf serve`` over TLS with an instance certificate of ``ca``, stopped after."""
    proc = ServerProcess(
        model_dir, ca.instance(tmp / "tls"), ca.pem, log=tmp / "serve.log", extra=extra
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def open_channel(server: ServerProcess) -> Any:
    """A gRPC channel to ``server`` over TLS to the policy CA, for ``<service>.<policy>``."""
    import grpc

    creds = grpc.ssl_channel_credentials(root_certificates=server.ca_pem)
    options = [("grpc.ssl_target_name_override", f"{SERVICE}.{POLICY}")]
    return grpc.secure_channel(f"127.0.0.1:{server.grpc_port}", creds, options=options)


class RecordingTlsServer:
    """A TLS server that records every application byte a client sends it."""

    def __init__(self, tls: TlsPair, port: int = 0) -> None:
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(tls.cert, tls.key)
        self._ctx.set_alpn_protocols(["h2", "http/1.1"])
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.received = bytearray()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(2)
            try:
                with self._ctx.wrap_socket(conn, server_side=True) as tls:
                    while chunk := tls.recv(65536):
                        self.received += chunk
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def rows(n: int, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.random.default_rng(seed).normal(size=(n, INPUT_DIM)).astype(np.float32)

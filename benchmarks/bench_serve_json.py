"""REST JSON cost of ``securetf serve`` for an InceptionV3-sized image (issue 17, item 5).

Run: python -m benchmarks.run serve_json

1. The codec alone, in this process: one 299x299x3 float32 image as TensorFlow Serving's
   row format (a 5.7 MB body) decoded and validated into the model's input array, and a
   1,000-float answer encoded: securetf's codec (orjson) against the stdlib ``json`` codec
   it replaced (``json.loads`` with the ``{"b64"}`` object hook, ``json.dumps``; the array
   checks are the same code), interleaved call by call. The collector is frozen first, as
   ``securetf serve`` freezes it after loading its models.
2. The request path: the same body POSTed (pre-encoded, so the client's encoding does not
   count) to ``securetf serve --insecure-no-tls`` (the plain server) and to
   ``securetf serve`` with TLS, outside the runtime, both on a cheap model that takes the
   image (so the time is the request path, not the model), interleaved request by request.
   The two servers run the same code; the only difference is TLS.
3. TLS alone, the floor of what 2. can show: the body through Python's ``ssl`` in this
   process, encrypted as a client writes it and decrypted as asyncio's TLS layer (which
   ``securetf serve`` uses) reads it, 256 KiB from the socket at a time; beside it the
   negotiated cipher alone (one AES-GCM call each way through OpenSSL, as ``openssl speed``
   measures it). Client and server each pay their half on every request.

Each figure is the median over ``PASSES`` passes of the per-pass median; the spread is
the range of the per-pass medians. ``SECURETF_BENCH_SERVE_JSON_N`` sets calls per pass.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import Row
from securetf.serve.rest_codec import (
    _rows,
    encode_response,
    parse_json,
    parse_predict,
    signature_name,
)
from securetf.serve.signature import OneSignature, Signature, TensorInfo

PASSES = 3
N = int(os.environ.get("SECURETF_BENCH_SERVE_JSON_N", "15"))
SHAPE = (1, 299, 299, 3)
F32 = np.dtype(np.float32)
SIG = Signature(
    inputs=(TensorInfo("x", F32, (None, 299, 299, 3)),),
    outputs=(TensorInfo("y", F32, (None, 1000)),),
)


class _Codec(OneSignature):
    """The signature of the image model, for the codec alone."""

    format = "bench"
    _signature = SIG

    def predict(self, inputs: Any, signature: str = "serving_default") -> Any:
        raise AssertionError("not called")


def _stdlib_codec(body: bytes, outputs: dict[str, Any]) -> bytes:
    """The codec before orjson: ``json`` with the b64 object hook, the same array checks."""
    from securetf.serve.rest_codec import b64_bytes, is_b64

    doc = json.loads(body, object_hook=lambda d: b64_bytes(d) if is_b64(d) else d)
    signature_name(doc)
    _rows(SIG, doc["instances"])
    values = {n: v.tolist() for n, v in outputs.items()}
    return json.dumps({"predictions": values["y"]}, separators=(",", ":")).encode()


def _orjson_codec(body: bytes, outputs: dict[str, Any]) -> bytes:
    parse_predict(body, _Codec())
    return encode_response(outputs, SIG, row_format=True)


def _interleaved(fns: Mapping[str, Callable[[], object]], n: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def _log(message: str) -> None:
    print(f"   serve_json: {message}", file=sys.stderr, flush=True)


def _summary(passes: list[dict[str, float]], key: str) -> tuple[float, float, float]:
    values = [p[key] for p in passes]
    return statistics.median(values), min(values), max(values)


def codec_passes(body: bytes) -> list[dict[str, float]]:
    outputs = {"y": np.random.default_rng(1).random((1, 1000)).astype(np.float32)}
    assert parse_json(body) == json.loads(body)
    gc.collect()
    gc.freeze()
    fns = {
        "stdlib": lambda: _stdlib_codec(body, outputs),
        "orjson": lambda: _orjson_codec(body, outputs),
    }
    out = []
    for i in range(PASSES):
        out.append(_interleaved(fns, N))
        _log(
            f"codec pass {i + 1}: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in out[-1].items())
        )
    return out


def _image_model(out: Path) -> None:
    import tensorflow as tf

    class Mean(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.tile(tf.reduce_mean(x, axis=[1, 2]), [1, 334])[:, :1000]}

    mean = Mean()
    tf.saved_model.save(mean, str(out), signatures={"serving_default": mean.serve})


def path_passes(body: bytes) -> list[dict[str, float]]:
    from tests.serve.support import ServerProcess, TestCa

    with tempfile.TemporaryDirectory(prefix="securetf-bench-json-", dir="/tmp") as tmp:
        root = Path(tmp)
        _image_model(root / "models" / "image" / "1")
        ca = TestCa.create()
        plain = ServerProcess(
            root / "models", None, None, log=root / "plain.log", extra=["--insecure-no-tls"]
        )
        tls = ServerProcess(
            root / "models", ca.instance(root / "tls"), ca.pem, log=root / "tls.log"
        )
        plain.start()
        tls.start()
        try:
            headers = {"content-type": "application/json"}
            with plain.http() as p, tls.http() as t:

                def post(client: Any) -> Callable[[], object]:
                    def call() -> object:
                        reply = client.post(
                            "/v1/models/image:predict", content=body, headers=headers
                        )
                        reply.raise_for_status()
                        return reply.content

                    return call

                fns = {"plain": post(p), "tls": post(t)}
                _interleaved(fns, 2)  # warm: connections, the model's first call
                out = []
                for i in range(PASSES):
                    out.append(_interleaved(fns, N))
                    _log(
                        f"path pass {i + 1}: "
                        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in out[-1].items())
                    )
                return out
        finally:
            plain.stop()
            tls.stop()


def _tls_objects(root: Path) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    """A client and a server ``SSLObject`` over memory BIOs, handshaken as the servers'."""
    from tests.serve.support import TestCa

    ca = TestCa.create()
    pair = ca.instance(root)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pair.cert, pair.key)
    client_ctx = ssl.create_default_context(cadata=ca.pem.decode())
    client_ctx.check_hostname = False
    bios = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
    client = client_ctx.wrap_bio(bios[0], bios[1], server_side=False)
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(8):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
    return client, server, bios


def tls_passes(body: bytes) -> tuple[str, list[dict[str, float]]]:
    """Python's ssl on ``body`` and the cipher alone, each in asyncio's 256 KiB pieces (so
    no 5.7 MB buffer is allocated, as none is on the request path): per pass the median
    of the client's encryption, the server's decryption and the cipher's both ways."""
    from asyncio.sslproto import SSLProtocol

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    chunk = SSLProtocol.max_size  # asyncio's read size, from the socket and from OpenSSL
    pieces = [memoryview(body)[at : at + chunk] for at in range(0, len(body), chunk)]
    with tempfile.TemporaryDirectory(prefix="securetf-bench-tls-", dir="/tmp") as tmp:
        client, server, (_, c_out, s_in, _) = _tls_objects(Path(tmp))
    negotiated = server.cipher()
    assert negotiated is not None, "the handshake did not finish"
    cipher = negotiated[0]
    aead = AESGCM(os.urandom(32 if "256" in cipher else 16))
    nonce = os.urandom(12)

    def once() -> dict[str, float]:
        start = time.perf_counter()
        wire = []
        for piece in pieces:  # a client's SSL_write: records, then the socket
            client.write(piece)
            wire.append(c_out.read())
        encrypted = time.perf_counter()
        got = 0
        for data in wire:  # asyncio's SSLProtocol: the BIO, then read() until it is empty
            s_in.write(data)
            parts = []
            with contextlib.suppress(ssl.SSLWantReadError):
                while part := server.read(chunk):
                    parts.append(part)
            got += len(b"".join(parts))
        decrypted = time.perf_counter()
        for piece in pieces:
            aead.decrypt(nonce, aead.encrypt(nonce, piece, None), None)
        assert got == len(body)
        return {
            "client": encrypted - start,
            "server": decrypted - encrypted,
            "cipher": time.perf_counter() - decrypted,
        }

    out = []
    for i in range(PASSES):
        calls = [once() for _ in range(N)]
        out.append({k: statistics.median(c[k] for c in calls) for k in calls[0]})
        _log(f"tls pass {i + 1}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in out[-1].items()))
    return cipher, out


def run() -> list[Row]:
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    body = json.dumps({"instances": x.tolist()}).encode()
    mb = len(body) / 1e6
    codec = codec_passes(body)
    path = path_passes(body)
    cipher, crypto = tls_passes(body)
    new, new_lo, new_hi = _summary(codec, "orjson")
    old, old_lo, old_hi = _summary(codec, "stdlib")
    tls, tls_lo, tls_hi = _summary(path, "tls")
    plain, plain_lo, plain_hi = _summary(path, "plain")
    ratios = [p["tls"] / p["plain"] for p in path]
    diffs = [(p["tls"] - p["plain"]) * 1e3 for p in path]
    for p in crypto:
        p["ssl"] = p["client"] + p["server"]
    through, through_lo, through_hi = _summary(crypto, "ssl")
    server_side = _summary(crypto, "server")[0]
    alone, alone_lo, alone_hi = _summary(crypto, "cipher")
    return [
        Row(
            "serve_json",
            f"REST JSON handling of a {mb:.1f} MB predict body (decode + checks + encode), "
            f"median of {PASSES} passes (spread {new_lo * 1e3:.0f}-{new_hi * 1e3:.0f} ms; "
            f"stdlib {old_lo * 1e3:.0f}-{old_hi * 1e3:.0f} ms)",
            new * 1e3,
            "ms",
            "stdlib json codec",
            old * 1e3,
            "<= 0.5x",
        ),
        Row(
            "serve_json",
            f"REST p50 of a {mb:.1f} MB predict body, securetf serve with TLS vs plain server, "
            f"median of {PASSES} passes (ratios {min(ratios):.3f}-{max(ratios):.3f}; "
            f"TLS {tls_lo * 1e3:.0f}-{tls_hi * 1e3:.0f} ms, plain "
            f"{plain_lo * 1e3:.0f}-{plain_hi * 1e3:.0f} ms; TLS alone, the row below, "
            f"puts the floor at {(plain + through) / plain:.3f}x)",
            tls * 1e3,
            "ms",
            "plain server, no TLS",
            plain * 1e3,
            # No target: the target is on the real models (bench_serve); on this
            # cheap model the TLS of the body alone (the next row) is more than 3 %.
        ),
        Row(
            "serve_json",
            f"of that, TLS alone: Python's ssl encrypting the body as a client and decrypting "
            f"it as asyncio's TLS layer does ({cipher}, in process; the server's half "
            f"{server_side * 1e3:.1f} ms), median of {PASSES} passes "
            f"(spread {through_lo * 1e3:.1f}-{through_hi * 1e3:.1f} ms; cipher "
            f"{alone_lo * 1e3:.1f}-{alone_hi * 1e3:.1f} ms; the request path's TLS minus plain: "
            f"{min(diffs):.1f} to {max(diffs):.1f} ms)",
            through * 1e3,
            "ms",
            "the cipher alone, both ways (one OpenSSL call each)",
            alone * 1e3,
        ),
    ]


if __name__ == "__main__":
    from benchmarks.run import table

    print(table(run()))

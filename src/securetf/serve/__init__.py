"""``securetf serve``: TensorFlow Serving's REST and gRPC APIs over TLS, with batching."""

from securetf.serve.batching import Batcher
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository, ServedModel, load_model
from securetf.serve.server import serve
from securetf.serve.settings import ServeSettings, TlsFiles, resolve_tls
from securetf.serve.signature import LoadedModel, Signature, TensorInfo

__all__ = [
    "Batcher",
    "LoadedModel",
    "ModelRepository",
    "ServeMetrics",
    "ServeSettings",
    "ServedModel",
    "Signature",
    "TensorInfo",
    "TlsFiles",
    "load_model",
    "resolve_tls",
    "serve",
]

"""``securetf serve``: TensorFlow Serving's REST and gRPC APIs over TLS, with batching.

Names are handed on lazily: importing this package (as the CLI does for ``serve``'s
option defaults) does not load the web stack or TensorFlow until they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securetf._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:
    from securetf.serve.batching import Batcher
    from securetf.serve.metrics import ServeMetrics
    from securetf.serve.repository import ModelRepository, ServedModel, load_model
    from securetf.serve.server import serve
    from securetf.serve.settings import ServeSettings, TlsFiles, resolve_tls
    from securetf.serve.signature import LoadedModel, Signature, TensorInfo

_WHERE = {
    "Batcher": "batching",
    "LoadedModel": "signature",
    "ModelRepository": "repository",
    "ServeMetrics": "metrics",
    "ServeSettings": "settings",
    "ServedModel": "repository",
    "Signature": "signature",
    "TensorInfo": "signature",
    "TlsFiles": "settings",
    "load_model": "repository",
    "resolve_tls": "settings",
    "serve": "server",
}

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


__getattr__ = _lazy_names(__name__, _WHERE)

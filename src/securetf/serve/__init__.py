"""``securetf serve``: TensorFlow Serving's REST and gRPC APIs over TLS, with batching.

Names are handed on lazily: importing this package (as the CLI does for ``serve``'s
option defaults) does not load the web stack or TensorFlow until they are used.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING
from typing import Any as _Any

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


def __getattr__(name: str) -> _Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'securetf.serve' has no attribute {name!r}")
    return getattr(_importlib.import_module(f"securetf.serve.{_WHERE[name]}"), name)

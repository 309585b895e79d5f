"""REST ``:classify`` and ``:regress``: JSON examples in, TF Serving's ``{"result": ...}`` out.

Classify answers ``{"result": [[["label", score], ...], ...]}``, one list of pairs per
example; regress answers ``{"result": [value, ...]}``.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import orjson

from securetf.serve._examples import examples_from_json
from securetf.serve.inference import (
    check_signature,
    classifications,
    examples_input,
    regressions,
)
from securetf.serve.repository import ServedModel
from securetf.serve.rest_codec import parse_json, signature_name
from securetf.serve.signature import CLASSIFY, Arrays, resolve_signature

__all__ = ["encode_result", "submit_examples"]


def submit_examples(served: ServedModel, body: bytes, method: str) -> tuple[Future[Arrays], int]:
    """Decode a classify/regress body and queue it; the future and the number of examples."""
    doc = parse_json(body)
    key, sig = resolve_signature(served.model, signature_name(doc))
    check_signature(key, sig, method)
    examples = examples_from_json(doc)
    return served.batcher.submit(examples_input(examples), key), len(examples)


def encode_result(outputs: Arrays, n: int, method: str) -> bytes:
    result: list[Any]
    if method == CLASSIFY:
        result = [
            [[label.decode("utf-8", "replace"), score] for label, score in found.pairs()]
            for found in classifications(outputs, n)
        ]
    else:
        result = regressions(outputs, n)
    return orjson.dumps({"result": result})

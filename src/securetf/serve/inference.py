"""Classify and Regress: ``tf.Example`` inputs through a signature, as TF Serving runs them.

A classification signature (method ``tensorflow/serving/classify``) takes the serialized
examples as its one DT_STRING input ``inputs`` and answers ``classes`` (DT_STRING) and/or
``scores`` (DT_FLOAT), both ``[examples, classes]``; a regression signature
(``tensorflow/serving/regress``) answers ``outputs``, DT_FLOAT ``[examples]`` or
``[examples, 1]``. The checks and their messages follow TF Serving's classifier and
regressor; every failure is a :class:`UsageError` (a model that answers the wrong shape
is the client's signature choice, as TF Serving treats it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from securetf.errors import UsageError
from securetf.serve.signature import CLASSIFY, REGRESS, Arrays, Signature

__all__ = [
    "Classes",
    "check_signature",
    "classifications",
    "examples_input",
    "regressions",
]

INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"
_KIND = {CLASSIFY: "classification", REGRESS: "regression"}


@dataclass(frozen=True)
class Classes:
    """One example's answer: labels and/or scores, in the model's order."""

    labels: list[bytes] | None
    scores: list[float] | None

    def pairs(self) -> list[tuple[bytes, float]]:
        """``(label, score)`` pairs; a missing half is ``b""`` or ``0.0``, as in the proto."""
        n = len(self.labels if self.labels is not None else self.scores or [])
        labels = self.labels if self.labels is not None else [b""] * n
        scores = self.scores if self.scores is not None else [0.0] * n
        return list(zip(labels, scores, strict=True))


def check_signature(key: str, sig: Signature, method: str) -> None:
    """``sig`` is a ``method`` signature over serialized examples, or a :class:`UsageError`."""
    kind = _KIND[method]
    if sig.method_name != method:
        raise UsageError(
            f"Expected {kind} signature method_name to be {method}. Was: {sig.method_name} "
            f"(signature {key!r})"
        )
    if sig.input_names != [INPUTS] or sig.input(INPUTS).dtype.kind != "O":
        raise UsageError(f"{kind} signature {key!r} must have one DT_STRING input {INPUTS!r}")
    wanted = {CLASSES, SCORES} if method == CLASSIFY else {OUTPUTS}
    if not wanted & set(sig.output_names):
        raise UsageError(f"{kind} signature {key!r} has none of the outputs {sorted(wanted)}")


def examples_input(serialized: list[bytes]) -> Arrays:
    """The signature's inputs for serialized ``tf.Example``s (a ``[n]`` DT_STRING tensor)."""
    if not serialized:
        raise UsageError("Input is empty: give at least one example")
    arr = np.empty(len(serialized), dtype=object)
    arr[:] = serialized
    return {INPUTS: arr}


def _rows(name: str, arr: npt.NDArray[Any], n: int) -> None:
    if arr.ndim != 2 or arr.shape[0] != n:
        raise UsageError(
            f"Expected Tensor shape: [batch_size num_classes] but got {list(arr.shape)} "
            f"for {name!r} (batch_size {n})"
        )


def classifications(outputs: Arrays, n: int) -> list[Classes]:
    """The ``classes``/``scores`` outputs for ``n`` examples, checked as TF Serving does."""
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    if classes is not None:
        _rows(CLASSES, classes, n)
        if classes.dtype.kind not in "OS":
            raise UsageError(f"Expected classes Tensor of DT_STRING, got {classes.dtype.name}")
    if scores is not None:
        _rows(SCORES, scores, n)
        if scores.dtype != np.float32:
            raise UsageError(f"Expected scores Tensor of DT_FLOAT, got {scores.dtype.name}")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise UsageError(
            f"Tensors class and score should match in shape: {list(classes.shape)} vs "
            f"{list(scores.shape)}"
        )
    if classes is None and scores is None:
        raise UsageError(f"the signature answered neither {CLASSES!r} nor {SCORES!r}")
    return [
        Classes(
            labels=None if classes is None else [bytes(v) for v in classes[i].tolist()],
            scores=None if scores is None else [float(v) for v in scores[i].tolist()],
        )
        for i in range(n)
    ]


def regressions(outputs: Arrays, n: int) -> list[float]:
    """The ``outputs`` output for ``n`` examples: ``[n]`` or ``[n, 1]`` DT_FLOAT."""
    values = outputs.get(OUTPUTS)
    if values is None:
        raise UsageError(f"the signature did not answer {OUTPUTS!r}")
    if values.dtype != np.float32:
        raise UsageError(f"Expected output Tensor of DT_FLOAT, got {values.dtype.name}")
    if not (values.shape == (n,) or values.shape == (n, 1)):
        raise UsageError(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {list(values.shape)} (batch_size {n})"
        )
    return [float(v) for v in values.reshape(n).tolist()]

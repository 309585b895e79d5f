"""gRPC calls over the repository: finding a signature, running it, and TF Serving's
``Classify``, ``Regress`` and ``MultiInference`` responses built from ``tf.Example``s."""

from __future__ import annotations

from typing import Any

from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    regression_pb2,
)

from securetf.errors import UsageError
from securetf.serve._examples import examples_from_input
from securetf.serve.inference import (
    check_signature,
    classifications,
    examples_input,
    regressions,
)
from securetf.serve.repository import ModelRepository, ServedModel
from securetf.serve.signature import CLASSIFY, REGRESS, Arrays, Signature, resolve_signature

__all__ = ["classify", "lookup", "multi_inference", "regress", "run"]

#: How long a gRPC call waits for its batch before giving up.
PREDICT_TIMEOUT_SECONDS = 300.0


def lookup(repo: ModelRepository, spec: Any) -> tuple[ServedModel, str, Signature]:
    """The model version and signature a ``ModelSpec`` names."""
    if not spec.name:
        raise UsageError("model_spec.name is required")
    if spec.HasField("version_label"):
        raise UsageError("version labels are not supported; name a version number")
    version = spec.version.value if spec.HasField("version") else None
    served = repo.get(spec.name, version)
    key, sig = resolve_signature(served.model, spec.signature_name)
    return served, key, sig


def run(served: ServedModel, key: str, inputs: Arrays) -> Arrays:
    """One call of signature ``key`` through the model's batcher (inside ``admit()``)."""
    return served.batcher.submit(inputs, key).result(timeout=PREDICT_TIMEOUT_SECONDS)


def _spec(out: Any, served: ServedModel, key: str) -> None:
    out.name = served.name
    out.version.value = served.version
    out.signature_name = key


def _classification(served: ServedModel, key: str, examples: list[bytes], out: Any) -> None:
    outputs = run(served, key, examples_input(examples))
    for found in classifications(outputs, len(examples)):
        result = out.classifications.add()
        for i in range(len(found.labels if found.labels is not None else found.scores or [])):
            entry = result.classes.add()
            if found.labels is not None:
                entry.label = found.labels[i].decode("utf-8", "replace")
            if found.scores is not None:
                entry.score = found.scores[i]


def _regression(served: ServedModel, key: str, examples: list[bytes], out: Any) -> None:
    outputs = run(served, key, examples_input(examples))
    for value in regressions(outputs, len(examples)):
        out.regressions.add().value = value


def _single(repo: ModelRepository, request: Any, method: str, response: Any) -> Any:
    served, key, sig = lookup(repo, request.model_spec)
    check_signature(key, sig, method)
    fill = _classification if method == CLASSIFY else _regression
    with served.batcher.admit():
        examples = examples_from_input(request.input)
        _spec(response.model_spec, served, key)
        fill(served, key, examples, response.result)
    return response


def classify(repo: ModelRepository, request: Any) -> Any:
    return _single(repo, request, CLASSIFY, classification_pb2.ClassificationResponse())


def regress(repo: ModelRepository, request: Any) -> Any:
    return _single(repo, request, REGRESS, regression_pb2.RegressionResponse())


def multi_inference(repo: ModelRepository, request: Any) -> Any:
    """Every task (classify or regress) of one model over the same examples, in order."""
    if not request.tasks:
        raise UsageError("MultiInferenceRequest has no tasks")
    tasks = []
    for task in request.tasks:
        served, key, sig = lookup(repo, task.model_spec)
        if task.method_name not in (CLASSIFY, REGRESS):
            raise UsageError(f"Unsupported signature method_name: {task.method_name!r}")
        check_signature(key, sig, task.method_name)
        tasks.append((served, key, task.method_name))
    if len({(s.name, s.version) for s, _, _ in tasks}) != 1:
        raise UsageError("All ModelSpecs in a MultiInferenceRequest must access the same model")
    if len({key for _, key, _ in tasks}) != len(tasks):
        raise UsageError("Duplicate evaluation of a signature in a MultiInferenceRequest")
    served = tasks[0][0]
    response = inference_pb2.MultiInferenceResponse()
    with served.batcher.admit():
        examples = examples_from_input(request.input)
        for _, key, method in tasks:
            result = response.results.add()
            _spec(result.model_spec, served, key)
            if method == CLASSIFY:
                _classification(served, key, examples, result.classification_result)
            else:
                _regression(served, key, examples, result.regression_result)
    return response

"""TensorFlow Serving's gRPC services: ``PredictionService`` and ``ModelService``.

The official ``tensorflow-serving-api`` stubs talk to these unchanged. Tensors arrive as
``TensorProto``s; each is checked for size before it is expanded (a one-value proto can
claim a shape of a trillion elements) and for its dtype and shape against the signature.
Classify, Regress and MultiInference take ``tf.Example``s (``securetf.serve.inference``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from securetf.errors import Error, NotFoundError, UsageError
from securetf.serve._grpc_inference import classify, lookup, multi_inference, regress, run
from securetf.serve.metadata import signature_def_map
from securetf.serve.metrics import ServeMetrics
from securetf.serve.repository import ModelRepository
from securetf.serve.rest_codec import array_for
from securetf.serve.signature import Arrays, Signature
from securetf.serve.tensors import array_to_proto, dtype_name, proto_to_array

log = logging.getLogger(__name__)

__all__ = ["ModelServicer", "PredictionServicer", "add_services"]


def _code(exc: Error) -> grpc.StatusCode:
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, UsageError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


def _inputs(sig: Signature, request: Any, max_bytes: int) -> Arrays:
    names = sig.input_names
    got = list(request.inputs.keys())
    missing = [n for n in names if n not in request.inputs]
    extra = [n for n in got if n not in names]
    if missing or extra:
        raise UsageError(f"expected inputs {names}, missing {missing}, unknown {extra}")
    out: Arrays = {}
    for name in names:
        info = sig.input(name)
        proto = request.inputs[name]
        arr = proto_to_array(proto, max_bytes=max_bytes)
        if arr.dtype != info.dtype and not (info.dtype.kind == "O" and arr.dtype.kind in "OS"):
            raise UsageError(f"input {name!r} expects {info.dt_name}, got {dtype_name(proto)}")
        # The same checks as REST's, strings included: rank, known dimensions, empty batch.
        out[name] = array_for(info, arr, batched_rows=False)
    return out


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """``Predict``, ``Classify``, ``Regress``, ``MultiInference`` and ``GetModelMetadata``."""

    def __init__(
        self,
        repo: ModelRepository,
        metrics: ServeMetrics,
        *,
        max_bytes: int,
        tensor_content: bool = False,
    ) -> None:
        self._repo = repo
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._tensor_content = tensor_content

    def _answer(
        self, method: str, model: str, context: grpc.ServicerContext, build: Callable[[], Any]
    ) -> Any:
        """``build()``'s response; a securetf error as its status, anything else INTERNAL."""
        start, code = time.perf_counter(), "OK"
        try:
            return build()
        except Error as exc:
            code = _code(exc).name
            context.abort(_code(exc), str(exc))
        except Exception:  # a bug of ours: INTERNAL with no detail, never gRPC's UNKNOWN
            code = "INTERNAL"
            log.exception("%s failed", method)
            context.abort(grpc.StatusCode.INTERNAL, "the server failed; see its log")
        finally:
            self._metrics.observe("grpc", method, model, code, time.perf_counter() - start)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def build() -> Any:
            served, key, sig = lookup(self._repo, request.model_spec)
            unknown = [n for n in request.output_filter if n not in sig.output_names]
            if unknown:
                raise UsageError(f"unknown outputs in output_filter: {unknown}")
            with served.batcher.admit():
                outputs = run(served, key, _inputs(sig, request, self._max_bytes))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = served.name
            response.model_spec.version.value = served.version
            response.model_spec.signature_name = key
            for out_name in list(request.output_filter) or list(outputs):
                response.outputs[out_name].CopyFrom(
                    array_to_proto(outputs[out_name], tensor_content=self._tensor_content)
                )
            return response

        return self._answer("predict", request.model_spec.name, context, build)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer(
            "classify", request.model_spec.name, context, lambda: classify(self._repo, request)
        )

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer(
            "regress", request.model_spec.name, context, lambda: regress(self._repo, request)
        )

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        model = request.tasks[0].model_spec.name if request.tasks else ""
        return self._answer(
            "multi_inference", model, context, lambda: multi_inference(self._repo, request)
        )

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def build() -> Any:
            served = self._repo.get(
                request.model_spec.name,
                request.model_spec.version.value
                if request.model_spec.HasField("version")
                else None,
            )
            if list(request.metadata_field) != ["signature_def"]:
                raise UsageError("metadata_field must be exactly ['signature_def']")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = served.name
            response.model_spec.version.value = served.version
            response.metadata["signature_def"].Pack(signature_def_map(served.model))
            return response

        return self._answer("metadata", request.model_spec.name, context, build)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """``GetModelStatus``; ``HandleReloadConfigRequest`` is not served."""

    def __init__(self, repo: ModelRepository) -> None:
        self._repo = repo

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        spec = request.model_spec
        try:
            if spec.HasField("version"):
                versions = [self._repo.get(spec.name, spec.version.value)]
            else:
                versions = self._repo.versions(spec.name)
        except Error as exc:
            context.abort(_code(exc), str(exc))
        response = get_model_status_pb2.GetModelStatusResponse()
        for served in versions:
            status = response.model_version_status.add()
            status.version = served.version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def add_services(
    server: grpc.Server,
    repo: ModelRepository,
    metrics: ServeMetrics,
    *,
    max_bytes: int,
    tensor_content: bool = False,
) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(repo, metrics, max_bytes=max_bytes, tensor_content=tensor_content),
        server,
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(repo), server)

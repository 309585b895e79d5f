"""The gRPC half of the serving client: the official stub over a verified TLS channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securetf.errors import AuthenticationError, Error, NotFoundError, UsageError


class GrpcPredictor:
    """A ``PredictionService`` stub whose channel trusts only ``trust_pem``: the policy CA,
    or (with a CAS) exactly the server certificate the client verified and found live.

    ``grpc.ssl_target_name_override`` makes the channel check the certificate against
    ``<service>.<policy>`` whatever address it dials.
    """

    def __init__(
        self,
        address: str,
        *,
        trust_pem: bytes,
        expected_name: str,
        client_files: tuple[Path | None, Path | None],
        timeout: float,
    ) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        cert, key = client_files
        creds = grpc.ssl_channel_credentials(
            root_certificates=trust_pem,
            private_key=key.read_bytes() if key else None,
            certificate_chain=cert.read_bytes() if cert else None,
        )
        self._grpc = grpc
        self._address = address
        self._name = expected_name
        self._timeout = timeout
        self._channel = grpc.secure_channel(
            address, creds, options=[("grpc.ssl_target_name_override", expected_name)]
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def predict(self, model: str, inputs: dict[str, Any], version: int | None) -> dict[str, Any]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        grpc = self._grpc
        try:  # 1. the handshake alone: nothing is sent unless the server is verified
            grpc.channel_ready_future(self._channel).result(timeout=self._timeout)
        except grpc.FutureTimeoutError:
            raise AuthenticationError(
                f"refused the gRPC server at {self._address}: no verified TLS connection "
                f"to {self._name} under the expected policy CA"
            ) from None
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = "serving_default"
        if version is not None:
            request.model_spec.version.value = int(version)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:  # 2. the call
            response = self._stub.Predict(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError(details) from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise UsageError(details) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise AuthenticationError(
                    f"refused or unreachable gRPC server at {self._address}: {details}"
                ) from None
            raise Error(f"gRPC predict failed: {code.name}: {details}") from None
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

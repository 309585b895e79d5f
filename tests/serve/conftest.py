"""One set of models and one TLS server (REST and gRPC) for the whole serve suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.support import ServerProcess, TestCa, build_models, open_channel, running_server


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_models(root)
    return root


@pytest.fixture(scope="session")
def policy_ca() -> TestCa:
    return TestCa.create()


@pytest.fixture(scope="session")
def server(
    model_dir: Path, policy_ca: TestCa, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``securetf serve`` with an instance certificate of the policy CA, batching on."""
    extra = ["--max-batch-size", "16", "--batch-timeout-ms", "200", "--max-request-mb", "1"]
    with running_server(model_dir, policy_ca, tmp_path_factory.mktemp("server"), extra) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    """The official ``PredictionService`` stub over TLS to the shared server."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with open_channel(server) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A plain httpx client of the shared server (TLS to the policy CA)."""
    with server.http() as client:
        yield client

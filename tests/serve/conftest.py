"""One set of models and one TLS server (REST and gRPC) for the whole serve suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.support import ServerProcess, TestCa, build_models, running_server


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

"""One CAS for the runtime tests (a real process, SQLite, sim TEE), attested, and an owner."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cas.server_support import attested_cas

from .support import Deployment, Job, make_job


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("runtime-cas")
    with attested_cas(base) as cas:
        public = cas.cli("owner", "keygen", base / "alice.key").stdout.strip()
        yield Deployment(cas, base / "alice.key", public)


@pytest.fixture
def new_job(deployment: Deployment) -> Iterator[Callable[..., Job]]:
    """Make jobs (see support.make_job); their directories go when the test ends."""
    jobs: list[Job] = []

    def make(**kwargs: Any) -> Job:
        job = make_job(deployment, **kwargs)
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        shutil.rmtree(job.root, ignore_errors=True)


@pytest.fixture
def cas_data(deployment: Deployment) -> Path:
    return deployment.cas.data


@pytest.fixture
def root() -> Iterator[Path]:
    """A fresh directory under /tmp (mount points and sealed volumes of one test)."""
    path = Path(f"/tmp/securetf-test-{secrets.token_hex(4)}")
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

"""Databases for the CAS tests: a SQLite file, or a database on a throwaway PostgreSQL.

The PostgreSQL server is real (Debian's ``postgresql``, installed by ``make setup``): one per
test session, in a private temporary directory, listening on a free localhost port and a
unix socket in that directory, run as the ``postgres`` system user when the tests run as
root (PostgreSQL refuses root). Each test gets a fresh database on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cas.pg_support import PgError, PgServer, postgres
from tests.cas.support import Clock, Owners, Runtime


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    try:
        with postgres() as server:
            yield server
    except PgError as exc:
        pytest.fail(str(exc))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty CAS database of each kind (the PostgreSQL server starts on first use)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cas.db'}"
        return
    server: PgServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def clock() -> Clock:
    """The CAS core's clock, which tests move by hand."""
    return Clock()


@pytest.fixture
def owners() -> Owners:
    return Owners()


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    """A runtime of the ``train`` service on the simulated TEE."""
    return Runtime(home=tmp_path / "home")

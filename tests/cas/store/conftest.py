from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from securetf.cas._store_api import Store
from securetf.cas.master_key import MasterKey
from securetf.cas.store import open_store
from securetf.crypto import SigningKey


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def audit_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def store(db_url: str, master_key: MasterKey, audit_key: SigningKey) -> Iterator[Store]:
    s = open_store(db_url, master_key=master_key, audit_key=audit_key)
    try:
        yield s
    finally:
        s.close()


def raw_engine(db_url: str) -> sa.Engine:
    """A plain engine on the same database, for what an attacker with DB access does."""
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def raw_sql(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = raw_engine(db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def sqlite_files(db_url: str) -> list[Path]:
    path = Path(db_url.removeprefix("sqlite:///"))
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]

"""A throwaway PostgreSQL server (Debian's ``postgresql``, installed by ``make setup``) for
the CAS tests and benchmarks: in a private temporary directory, listening on a free
localhost port and a unix socket there, run as the ``postgres`` system user when running as
root (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.ports import free_port

PG_GLOB = "/usr/lib/postgresql/*/bin"
PG_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL (plain ``postgresql://``, as a user would write it)."""
        name = "cas_" + os.urandom(6).hex()
        admin = f"host={self.host} port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # name is ours: hex only
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database of :meth:`create_database` (its connections closed by force), so a
        session does not keep hundreds of them on disk."""
        name = url.rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # name is ours: hex only

    def execute(self, sql: str, database: str = "postgres") -> None:
        conninfo = f"host={self.host} port={self.port} user={self.user} dbname={database}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.encode())


def _pg_bindir() -> Path:
    candidates = sorted(
        (p for p in Path("/").glob(PG_GLOB.lstrip("/")) if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PgError(
            f"PostgreSQL server binaries not found under {PG_GLOB}: run `make setup` "
            "(it installs Debian's postgresql package, which the CAS tests need)"
        )
    return candidates[-1]


def _as_server_user(base: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a user it accepts."""
    if os.geteuid() != 0:
        return []
    pw = pwd.getpwnam("postgres")
    os.chown(base, pw.pw_uid, pw.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=PG_START_TIMEOUT_S)
    if done.returncode != 0:
        raise PgError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}")


class PgError(RuntimeError):
    """The server's binaries are missing, or it did not start."""


@contextmanager
def postgres(*, durable: bool = False) -> Iterator[PgServer]:
    """A running server, stopped and deleted on exit. Not ``durable``: no fsync at all (tests
    need no durability across a power loss); ``durable``: PostgreSQL's defaults, every commit
    flushed (what the benchmarks measure)."""
    bindir = _pg_bindir()
    # Not pytest's tmp_path: its parents are mode 0700 root, out of the postgres user's reach.
    base = Path(tempfile.mkdtemp(prefix="securetf-pg-"))
    data, log = base / "data", base / "server.log"
    prefix = _as_server_user(base)
    port = free_port()
    _run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        "initdb",
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(PG_START_TIMEOUT_S),
            "start",
        ],
        f"starting PostgreSQL (log: {log})",
    )
    try:
        yield PgServer("127.0.0.1", port, "postgres", data)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=PG_START_TIMEOUT_S,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)

"""The CAS tables (SQLAlchemy Core), created on open, with a schema version.

Columns named ``sealed``/``key_sealed`` hold :mod:`._sealing` ciphertexts, never plaintext.
``state_head`` and ``policy_state`` vouch for the other rows (:mod:`._state`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    insert,
    select,
    text,
)

from securetf.cas.audit import GENESIS_CHAIN
from securetf.cas.store._errors import StoreError
from securetf.log.sql import log_metadata

__all__ = ["SCHEMA_VERSION", "init_schema"]

SCHEMA_VERSION = 2  # 2: authenticated state (state_head, policy_state)
_PG_INIT_LOCK = 0x5EC7E7F0  # advisory lock id: one process creates the schema at a time

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("name", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("hash", Text, nullable=False),
    Column("yaml", LargeBinary, nullable=False),
    Column("approvals", Text, nullable=False),  # JSON list of hex
    Column("created_at", Double, nullable=False),
)

pending_updates = Table(
    "pending_updates",
    metadata,
    Column("name", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("hash", Text, nullable=False),
    Column("yaml", LargeBinary, nullable=False),
    Column("approvals", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

pending_secrets = Table(
    "pending_secrets",
    metadata,
    Column(
        "policy",
        Text,
        ForeignKey("pending_updates.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

request_ids = Table(
    "request_ids",
    metadata,
    Column("id", Text, primary_key=True),
    Column("seen_at", Double, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("policy", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
)

cas = Table(
    "cas",
    metadata,
    Column("policy", Text, primary_key=True),
    Column("key_sealed", LargeBinary, nullable=False),
    Column("cert_pem", LargeBinary, nullable=False),
)

nonces = Table(  # provisioning nonces spent (granted or refused), until they expire
    "nonces",
    metadata,
    Column("nonce", LargeBinary, primary_key=True),
    Column("expires_at", Double, nullable=False),
    Index("nonces_expires_at", "expires_at"),
)

# Audited refusals per source and window, shared by the replicas (docs/cas.md, "Refusals
# from anyone"). Not part of the authenticated state: each row carries its own MAC, so a
# forged count is refused (and the refusal audited); a count put back only audits more.
refusal_windows = Table(
    "refusal_windows",
    metadata,
    Column("source", Text, primary_key=True),
    Column("window", BigInteger, primary_key=True),
    Column("written", Integer, nullable=False),
    Column("mac", LargeBinary, nullable=False),
)

serials = Table(  # every serial ever handed out, never deleted: serials are never reused
    "serials",
    metadata,
    Column("serial", BigInteger, primary_key=True, autoincrement=False),
)

instances = Table(
    "instances",
    metadata,
    Column("serial", BigInteger, primary_key=True, autoincrement=False),
    Column("policy", Text, nullable=False),
    Column("policy_version", BigInteger, nullable=False),
    Column("service", Text, nullable=False),
    Column("instance", BigInteger, nullable=False),
    Column("public_key_der", LargeBinary, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("tee", Text, nullable=False),
    Column("measurement", LargeBinary, nullable=False),
)

volume_tags = Table(
    "volume_tags",
    metadata,
    Column("policy", Text, primary_key=True),
    Column("volume", Text, primary_key=True),
    Column("tag", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", Double, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", Double, nullable=False),
    Column("kind", Text, nullable=False),
    Column("policy", Text, nullable=True),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("digest", LargeBinary, nullable=False),
    Column("chain", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

# The one row every append locks and moves: appends queue on it, so the chain never forks,
# and a row deleted from audit_log cannot make the next append silently re-use its seq.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("chain", LargeBinary, nullable=False),
)


# The digest of the last identity entry the CAS logged (see Tx.log_identity): a restart
# with the same identity logs nothing.
log_identity = Table(
    "log_identity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("digest", LargeBinary, nullable=False),
)


# Where the entry of a decision that clients check is in the transparency log:
# "policy/<name>/<version>", "certificate/<policy>/<serial>", "identity" (the last). Only a
# pointer: a client compares the entry it proves with the answer, so a wrong row is caught.
log_refs = Table(
    "log_refs",
    metadata,
    Column("ref", Text, primary_key=True),
    Column("idx", BigInteger, nullable=False),
)


# Each witness's latest cosignature of a checkpoint (a signed-note line it posted): the
# checkpoint that k of them cosigned is the one clients are given. The CAS checks each
# line against the witness's key before it stores it; a restored database loses the newer
# ones, which the witnesses (their state files) and the clients (kept checkpoints) notice.
log_cosignatures = Table(
    "log_cosignatures",
    metadata,
    Column("witness", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("line", LargeBinary, nullable=False),
)


# The largest checkpoint k witnesses cosigned (its size, root, and their lines): what
# clients are given while the witnesses move on to the next one.
log_witnessed = Table(
    "log_witnessed",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("lines", LargeBinary, nullable=False),
)


# The authenticated state: one row that lists every policy's head (and its MAC), and one
# head per policy that lists the MAC of each of its rows. See _state.py.
state_head = Table(
    "state_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
    Column("policies", Text, nullable=False),  # canonical JSON {name: head MAC hex}
    Column("mac", LargeBinary, nullable=False),
)

policy_state = Table(
    "policy_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("rows", Text, nullable=False),  # canonical JSON {"table/key": row MAC hex}
)


def init_schema(conn: Connection) -> bool:
    """Create what is missing, check the version (inside the caller's transaction).

    True if the database was new (the caller then writes the first state head).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_INIT_LOCK})
    metadata.create_all(conn, checkfirst=True)
    log_metadata.create_all(conn, checkfirst=True)  # the transparency log's tables
    found = conn.execute(select(schema_version.c.version)).scalars().all()
    if not found:
        conn.execute(insert(schema_version).values(id=1, version=SCHEMA_VERSION))
    elif found != [SCHEMA_VERSION] and max(found) < SCHEMA_VERSION:
        raise StoreError(
            f"the CAS database has schema version {max(found)}, made by an older securetf "
            f"whose rows are not authenticated (this one needs version {SCHEMA_VERSION}); "
            "start this CAS on a new database and apply the policies again"
        )
    elif found != [SCHEMA_VERSION]:
        raise StoreError(
            f"the CAS database has schema version {max(found)}, this securetf knows version "
            f"{SCHEMA_VERSION}: upgrade securetf (or point --db at the right database)"
        )
    if conn.execute(select(audit_head.c.id)).first() is None:
        conn.execute(insert(audit_head).values(id=1, seq=0, chain=GENESIS_CHAIN))
    return not found

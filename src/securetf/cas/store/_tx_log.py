"""The transparency log inside a CAS transaction: appended with the decision it records."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from securetf.cas._log_entries import IDENTITY_REF
from securetf.cas.store._errors import TransactionConflictError
from securetf.cas.store._schema import log_cosignatures, log_identity, log_refs, log_witnessed
from securetf.cas.store._tx_base import TxBase
from securetf.crypto import sha256
from securetf.log import AppendConflictError, LogTree, _rawsql
from securetf.log.sql import ConnectionLogStore

__all__ = ["LogOps"]

# Built once (read on every provisioning): see TxBase._upsert.
_LOG_REF = select(log_refs.c.idx).where(log_refs.c.ref == bindparam("ref"))
# The same two on the driver's cursor, as the log's append (:mod:`securetf.log._rawsql`):
# both run in every provisioning's transaction.
_RAW_LOG_REF = "SELECT idx FROM log_refs WHERE ref = ?"
_RAW_UPSERT_REF = (
    "INSERT INTO log_refs (ref, idx) VALUES (?, ?) "
    "ON CONFLICT (ref) DO UPDATE SET idx = excluded.idx"
)


class LogOps(TxBase):
    def append_log(self, entry: bytes, ref: str | None = None) -> int:
        # SQLite runs one writer at a time (BEGIN IMMEDIATE); on PostgreSQL the loser of a
        # race fails here or at commit and the whole decision is re-run by Store.run, so
        # neither a fork nor a decision without its entry is ever committed.
        try:
            tree = self._appender()
            index = tree.append(entry)
        except AppendConflictError as exc:
            raise TransactionConflictError(str(exc)) from exc
        if tree.appended is not None:
            self.log_appended.append((tree.appended, index))
        if ref is not None:
            if _rawsql.usable(self._conn):
                _rawsql.execute(self._conn, _RAW_UPSERT_REF, (ref, index))
            else:
                self._upsert(log_refs, {"ref": ref, "idx": index}, ["ref"])
        return index

    def _appender(self) -> LogTree:
        """The log in this transaction, extended from the process's kept edge when the
        database's stored root commits to it (:mod:`securetf.log._edge`)."""
        if self._log_edges is None:
            return LogTree(ConnectionLogStore(self._conn))
        full, edges = self._log_edges
        return LogTree(ConnectionLogStore(self._conn), full_tiles=full, edges=edges)

    def log_ref(self, ref: str) -> int | None:
        if _rawsql.usable(self._conn):
            found = _rawsql.fetch_one(self._conn, _RAW_LOG_REF, (ref,))
        else:
            row = self._conn.execute(_LOG_REF, {"ref": ref}).first()
            found = None if row is None else (row.idx,)
        return None if found is None else int(found[0])

    def log_identity(self, entry: bytes) -> int | None:
        digest = sha256(entry)
        row = self._conn.execute(
            select(log_identity.c.digest).where(log_identity.c.id == 1)
        ).first()
        if row is not None and bytes(row.digest) == digest:
            return None
        index = self.append_log(entry, IDENTITY_REF)
        self._upsert(log_identity, {"id": 1, "digest": digest}, ["id"])
        return index

    def log_cosign(self, witness: str, size: int, root: bytes, line: bytes) -> bool:
        """Keep ``witness``'s cosignature ``line`` of the tree of ``size`` unless it has one
        of a larger tree already; True if kept."""
        row = self._conn.execute(
            select(log_cosignatures.c.size).where(log_cosignatures.c.witness == witness)
        ).first()
        if row is not None and int(row.size) > size:
            return False
        values = {"witness": witness, "size": size, "root": root, "line": line}
        self._upsert(log_cosignatures, values, ["witness"])
        return True

    def log_witnessed(self, size: int, root: bytes, lines: bytes) -> None:
        """Keep the checkpoint of ``size`` that k witnesses cosigned, unless a larger one
        is kept already."""
        kept = self.log_counted()
        if kept is None or kept[0] < size:
            values = {"id": 1, "size": size, "root": root, "lines": lines}
            self._upsert(log_witnessed, values, ["id"])

    def log_counted(self) -> tuple[int, bytes, bytes] | None:
        """(size, root, cosignature lines) of the largest checkpoint k witnesses cosigned."""
        row = self._conn.execute(select(log_witnessed).where(log_witnessed.c.id == 1)).first()
        return None if row is None else (int(row.size), bytes(row.root), bytes(row.lines))

    def log_cosignatures(self) -> list[tuple[str, int, bytes, bytes]]:
        """(witness, size, root, line) of each witness's latest cosignature."""
        rows = self._conn.execute(select(log_cosignatures)).all()
        return [(r.witness, int(r.size), bytes(r.root), bytes(r.line)) for r in rows]

    def log_tree(self) -> LogTree:
        """The log as this transaction sees it (for reads)."""
        return LogTree(ConnectionLogStore(self._conn))

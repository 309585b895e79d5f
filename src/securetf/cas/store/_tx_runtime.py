"""What attested runtimes use: nonces, instances and their serials, volume tags."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from securetf.cas._records import Instance, VolumeTag
from securetf.cas._store_api import TagConflict
from securetf.cas.store._errors import StoreError
from securetf.cas.store._schema import instances, nonces, serials, volume_tags
from securetf.cas.store._tx_base import TxBase
from securetf.crypto import random_bytes

__all__ = ["RuntimeOps"]

_SUPERSEDE = (
    delete(instances)
    .where(
        instances.c.policy == bindparam("slot_policy"),
        instances.c.service == bindparam("slot_service"),
        instances.c.instance == bindparam("slot_instance"),
    )
    .returning(instances.c.serial)
)
_SERIAL_TRIES = 8  # 63-bit random serials: a single collision is already astronomically rare


def _instance(row: Any) -> Instance:
    return Instance(
        serial=row.serial,
        policy=row.policy,
        policy_version=row.policy_version,
        service=row.service,
        instance=row.instance,
        public_key_der=bytes(row.public_key_der),
        expires_at=row.expires_at,
        created_at=row.created_at,
        tee=row.tee,
        measurement=bytes(row.measurement),
    )


# Built once (read or written on every provisioning): see TxBase._upsert.
_INSERT_INSTANCE = insert(instances)
_GET_TAG = select(volume_tags).where(
    volume_tags.c.policy == bindparam("tag_policy"), volume_tags.c.volume == bindparam("tag_volume")
)


class RuntimeOps(TxBase):
    # -- nonces ------------------------------------------------------------------------
    def spend_nonce(self, nonce: bytes, expires_at: float) -> bool:
        # One INSERT decides: of two concurrent spenders only one inserts (SQLite runs them
        # one at a time; on PostgreSQL the second waits for the first's commit, then finds
        # the row, or fails with a serialization error and is re-run by Store.run).
        return self._insert_absent(nonces, {"nonce": nonce, "expires_at": expires_at})

    def purge_nonces(self, before: float) -> None:
        self._conn.execute(delete(nonces).where(nonces.c.expires_at < before))

    # -- instances ---------------------------------------------------------------------
    def add_instance(self, instance: Instance) -> list[int]:
        if instance.serial not in self._drawn:  # next_serial recorded it already
            self._insert_absent(serials, {"serial": instance.serial})
        # The slot's previous instances are superseded: gone from the table and the head.
        slot: dict[str, object] = {
            "slot_policy": instance.policy,
            "slot_service": instance.service,
            "slot_instance": instance.instance,
        }
        superseded = list(self._conn.execute(_SUPERSEDE, slot).scalars().all())
        for serial in superseded:
            self._forget(instance.policy, instances, str(serial))
        values = {
            "serial": instance.serial,
            "policy": instance.policy,
            "policy_version": instance.policy_version,
            "service": instance.service,
            "instance": instance.instance,
            "public_key_der": instance.public_key_der,
            "expires_at": instance.expires_at,
            "created_at": instance.created_at,
            "tee": instance.tee,
            "measurement": instance.measurement,
        }
        self._conn.execute(_INSERT_INSTANCE, values)
        self._record(instance.policy, instances, str(instance.serial), values)
        return superseded

    def get_instance(self, serial: int) -> Instance | None:
        row = self._conn.execute(select(instances).where(instances.c.serial == serial)).first()
        if row is None:
            return None  # a deleted row only refuses its instance
        self._check_row(row.policy, instances, str(serial), row)
        return _instance(row)

    def next_serial(self) -> int:
        # Random rather than a counter: no hot row for concurrent provisioning to fight
        # over, and serials reveal nothing about how many certificates were issued.
        for _ in range(_SERIAL_TRIES):
            serial = int.from_bytes(random_bytes(8), "big") >> 1
            if serial and self._insert_absent(serials, {"serial": serial}):
                self._drawn.add(serial)
                return serial
        raise StoreError("could not draw an unused certificate serial number")  # pragma: no cover

    # -- volume tags -------------------------------------------------------------------
    def get_tag(self, policy: str, volume: str) -> VolumeTag | None:
        row = self._conn.execute(_GET_TAG, {"tag_policy": policy, "tag_volume": volume}).first()
        if row is None:
            self._check_absent(policy, volume_tags, volume)
            return None
        self._check_row(policy, volume_tags, volume, row)
        return VolumeTag(row.policy, row.volume, row.tag, row.version, row.updated_at)

    def swap_tag(self, expected: str | None, new: VolumeTag) -> None:
        # Compared with the authenticated tag first: a row deleted or edited in the database
        # must not make the SQL compare below succeed.
        current = self.get_tag(new.policy, new.volume)
        if (current.tag if current else None) != expected or (
            current is not None and new.version < current.version
        ):
            raise TagConflict(current)
        values = {"tag": new.tag, "version": new.version, "updated_at": new.updated_at}
        if expected is None:
            key = {"policy": new.policy, "volume": new.volume}
            done = self._insert_absent(volume_tags, {**key, **values})
        else:
            # The compare and the swap are one statement; a lower version never lands.
            done = (
                self._conn.execute(
                    update(volume_tags)
                    .where(
                        volume_tags.c.policy == new.policy,
                        volume_tags.c.volume == new.volume,
                        volume_tags.c.tag == expected,
                        volume_tags.c.version <= new.version,
                    )
                    .values(**values)
                ).rowcount
                == 1
            )
        if not done:
            raise TagConflict(self.get_tag(new.policy, new.volume))
        self._record(
            new.policy,
            volume_tags,
            new.volume,
            {"policy": new.policy, "volume": new.volume, **values},
        )

"""Child process of test_crash: commits a step at a time, forever, until it is killed.

Each step writes a policy version, a secret, a tag move and an audit entry in one
transaction, then prints its number (only after the commit returned).
Usage: python -m tests.cas.store._crash_writer DB_URL DATA_DIR AUDIT_KEY_PEM
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from securetf.cas._records import PolicyVersion, VolumeTag
from securetf.cas._store_api import Tx
from securetf.cas.master_key import MasterKey
from securetf.cas.store import open_store
from securetf.crypto import SigningKey


def step(tx: Tx, *, i: int) -> None:
    tx.insert_policy(PolicyVersion("p", i, f"h{i}", b"yaml %d" % i, (), float(i)))
    tx.put_secret("p", f"s{i}", b"value %d" % i)
    tx.swap_tag(None if i == 1 else f"t{i - 1}", VolumeTag("p", "vol", f"t{i}", i, float(i)))
    tx.append_audit("step", "p", {"i": i}, float(i))


def main(argv: list[str]) -> None:
    url, data_dir, key_file = argv[1], Path(argv[2]), Path(argv[3])
    store = open_store(
        url,
        master_key=MasterKey.load_or_create(data_dir),
        audit_key=SigningKey.from_pem(key_file.read_bytes()),
    )
    i = 0
    while True:
        i += 1
        store.run(partial(step, i=i))
        print(i, flush=True)


if __name__ == "__main__":
    main(sys.argv)

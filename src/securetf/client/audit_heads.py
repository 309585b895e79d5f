"""The audit head each owner's read verified last, per CAS and policy, kept in
``$SECURETF_HOME/audit-heads/<host>_<port>/<policy>.json`` (mode 0600).

A later read must reach at least as far and pass through it (:mod:`securetf.client.audit`,
step 6): a CAS whose log was cut short or replaced since is refused. A head is written only
after the read that reached it was verified, and atomically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from securetf._fsutil import atomic_write
from securetf.attestation.sim_key import securetf_home
from securetf.client.audit import ChainHead
from securetf.client.pins import cas_file_stem
from securetf.errors import UsageError

__all__ = ["keep_head", "kept_head"]

_POLICY_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _path(url: str, policy: str, home: Path | None) -> Path:
    if not _POLICY_NAME.match(policy):
        raise UsageError(f"{policy!r} is not a policy name (a DNS label, like 'cancer')")
    return (home or securetf_home()) / "audit-heads" / cas_file_stem(url) / f"{policy}.json"


def kept_head(url: str, policy: str, home: Path | None = None) -> ChainHead | None:
    """The head kept for ``policy`` at the CAS at ``url``; None before the first read."""
    path = _path(url, policy, home)
    try:
        data = json.loads(path.read_text())
        return ChainHead(
            int(data["seq"]), bytes.fromhex(data["chain"]), bytes.fromhex(data["signature"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(
            f"the kept audit head {path} is damaged; if you trust this CAS's log as it is "
            "now, remove the file (the next read keeps a new head)"
        ) from exc


def keep_head(url: str, policy: str, head: ChainHead, home: Path | None = None) -> Path:
    """Keep ``head``, which a read just verified (and which extends the one kept before).
    A head further along, kept meanwhile by a concurrent read, stays."""
    path = _path(url, policy, home)
    current = kept_head(url, policy, home)
    if current is not None and current.seq > head.seq:
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc = {"seq": head.seq, "chain": head.chain.hex(), "signature": head.signature.hex()}
    atomic_write(path, json.dumps(doc, indent=2).encode(), mode=0o600)
    return path

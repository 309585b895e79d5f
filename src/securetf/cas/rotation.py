"""``securetf cas rotate-key``: a new TLS key for the CAS, endorsed by the one it retires.

The link (:mod:`securetf.protocol.rotation`) is appended to ``identity/tls.rotations``; the
new key, sealed under the master key, replaces ``identity/tls.key.sealed``, and the
certificate is made again at the next start (:func:`securetf.cas.identity.load_identity`),
carrying the whole chain. At that start the CAS logs its new identity in the transparency
log, and its evidence binds the new certificate: clients that pinned an earlier one follow
the chain and attest the new one (:mod:`securetf.client.rotation`).

Order of writes, so a crash leaves a usable identity: the chain first (a link to a key
that never took office is ignored: :func:`current_chain`), then the key.
"""

from __future__ import annotations

import json
from pathlib import Path

from securetf._fsutil import atomic_write
from securetf.cas._identity_keys import IDENTITY_DIR, read_identity_key, write_identity_key
from securetf.cas.master_key import MasterKey
from securetf.crypto import sha256
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError
from securetf.policy import canonical_json
from securetf.protocol.rotation import RotationLink

__all__ = ["ROTATIONS_FILE", "current_chain", "rotate_key"]

ROTATIONS_FILE = "tls.rotations"


def _load(ident: Path) -> list[RotationLink]:
    path = ident / ROTATIONS_FILE
    if not path.exists():
        return []
    try:
        return [RotationLink.from_json(v) for v in json.loads(path.read_bytes())]
    except (ValueError, TypeError):
        raise UsageError(f"{path} is damaged: restore the identity from a backup") from None


def current_chain(ident: Path, key: EcKey) -> list[RotationLink]:
    """The chain that ends at ``key`` (a last link to another key is a rotation that
    stopped before its key was written: dropped)."""
    links = _load(ident)
    want = sha256(key.public_der()).hex()
    while links and links[-1].next != want:
        links.pop()
    return links


def rotate_key(data_dir: Path, *, now: float, master: MasterKey) -> str:
    """Retire the CAS's TLS key for a new one; return the new key's SPKI SHA-256 (hex).
    The CAS takes it at its next start."""
    ident = data_dir / IDENTITY_DIR
    if not (ident / "tls.key.sealed").exists() and not (ident / "tls.key").exists():
        raise UsageError(f"{data_dir} holds no CAS identity (identity/tls.key.sealed)")
    if (ident / "tls.key").exists():
        raise UsageError(
            f"{data_dir}'s identity keys are not sealed yet: start the CAS once (it seals "
            "them), stop it, then rotate its key"
        )
    old = EcKey.from_pem(read_identity_key(data_dir, "tls.key", master), source="tls.key")
    new = EcKey.generate()
    prev, nxt, at = old.public_der(), sha256(new.public_der()).hex(), int(now)
    link = RotationLink(prev, nxt, at, old.sign(RotationLink.message(prev, nxt, at)))
    chain = [*current_chain(ident, old), link]
    atomic_write(ident / ROTATIONS_FILE, canonical_json([x.to_json() for x in chain]), mode=0o600)
    write_identity_key(data_dir, "tls.key", master, new.to_pem())
    return nxt

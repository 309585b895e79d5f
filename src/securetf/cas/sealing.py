"""Sealing the CAS master key to the TEE the CAS runs in.

A sealed blob opens only where the same TEE key is available:

- **sim**: the key is derived from the simulated platform key
  (``$SECURETF_HOME/sim-platform-key.pem``). Whoever reads that file unseals, which is what
  "sim protects nothing" means; a machine with another platform key cannot.
- **sgx**: Gramine's sealing key bound to MRENCLAVE, read from
  ``/dev/attestation/keys/_sgx_mrenclave`` (16 bytes; Gramine derives it with EGETKEY, so
  only this enclave build on this CPU gets it). A new CAS build has another MRENCLAVE and
  cannot unseal: it starts from a backup and owners' shares (``securetf cas recover``).
- **tdx**, **sev-snp**: not sealed here (:func:`sealer_for` returns None). TDX has no
  sealing key; SEV-SNP can derive one (``MSG_KEY_REQ`` through ``/dev/sev-guest``, bound to
  the launch measurement) but this build does not call it. On a confidential VM the master
  key file relies on the VM's encrypted disk, whose key a key broker releases to the VM's
  attestation; docs/cas.md says so.

Format of a sealed blob (format 1)::

    "securetf-sealed-v1\\n" || tee || "\\n" || salt (32 random bytes)
        || AES-256-GCM(key, nonce = 12 zero bytes, secret, aad = everything before)
    key = HKDF-SHA-256(TEE key, salt, info = "securetf-cas-seal-v1\\0" || tee)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from securetf._logutil import warn_loudly
from securetf.attestation.detect import GRAMINE_ROOT_ENV
from securetf.attestation.gramine import GRAMINE_ROOT
from securetf.attestation.sim_key import load_or_create_platform_key
from securetf.crypto import NONCE_SIZE, AesGcm, hkdf_sha256, random_bytes
from securetf.errors import IntegrityError, UsageError

__all__ = ["GRAMINE_SEALING_KEY", "GramineSealer", "KeySealer", "SimSealer", "sealer_for"]

_MAGIC = b"securetf-sealed-v1\n"
_SALT = 32
_INFO = b"securetf-cas-seal-v1\x00"
_NONCE = bytes(NONCE_SIZE)
#: Gramine's MRENCLAVE-bound sealing key, relative to its /dev/attestation directory.
GRAMINE_SEALING_KEY = Path("keys/_sgx_mrenclave")

_log = logging.getLogger(__name__)


class KeySealer(Protocol):
    tee: str

    def seal(self, secret: bytes) -> bytes: ...
    def unseal(self, blob: bytes) -> bytes:
        """The secret; :class:`IntegrityError` if this TEE did not seal ``blob``."""


class _Sealer:
    """Seals under a key only the TEE gives out (its bytes come from :meth:`_tee_key`)."""

    tee = ""

    def _tee_key(self) -> bytes:
        raise NotImplementedError  # pragma: no cover

    def seal(self, secret: bytes) -> bytes:
        salt = random_bytes(_SALT)
        head = _MAGIC + self.tee.encode() + b"\n" + salt
        return head + self._aead(salt).seal(_NONCE, secret, head)

    def unseal(self, blob: bytes) -> bytes:
        prefix = _MAGIC + self.tee.encode() + b"\n"
        if not blob.startswith(prefix) or len(blob) < len(prefix) + _SALT:
            raise IntegrityError()
        head = blob[: len(prefix) + _SALT]
        return self._aead(head[len(prefix) :]).open(_NONCE, blob[len(head) :], head)

    def _aead(self, salt: bytes) -> AesGcm:
        return AesGcm(hkdf_sha256(self._tee_key(), salt=salt, info=_INFO + self.tee.encode()))


class SimSealer(_Sealer):
    """Sealing to the simulated platform key of ``home`` (``$SECURETF_HOME``)."""

    tee = "sim"

    def __init__(self, home: Path | None = None) -> None:
        self._home = home

    def _tee_key(self) -> bytes:
        return load_or_create_platform_key(self._home).to_pem()


class GramineSealer(_Sealer):
    """Sealing to MRENCLAVE through Gramine's ``/dev/attestation/keys/_sgx_mrenclave``."""

    tee = "sgx"

    def __init__(self, root: Path = GRAMINE_ROOT) -> None:
        self._path = root / GRAMINE_SEALING_KEY

    def _tee_key(self) -> bytes:
        try:
            key = self._path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read Gramine's sealing key {self._path}: {exc.strerror} (the CAS "
                "must run inside a Gramine SGX enclave to seal or unseal its master key)"
            ) from None
        if len(key) != 16:
            raise UsageError(f"Gramine's sealing key {self._path} holds {len(key)} bytes, not 16")
        return key


def sealer_for(tee: str, *, home: Path | None = None) -> KeySealer | None:
    """The sealer of ``tee``; None on a confidential VM (its disk encryption protects the
    key file: see the module's text)."""
    if tee == "sim":
        return SimSealer(home)
    if tee == "sgx":
        return GramineSealer(Path(os.environ.get(GRAMINE_ROOT_ENV) or GRAMINE_ROOT))
    if tee in ("tdx", "sev-snp"):
        warn_loudly(
            _log,
            "the CAS master key is NOT sealed on %s: it relies on the confidential VM's "
            "encrypted disk (see docs/cas.md, 'The master key')",
            tee,
        )
        return None
    raise UsageError(f"unknown TEE {tee!r}: use sim, sgx, tdx or sev-snp")

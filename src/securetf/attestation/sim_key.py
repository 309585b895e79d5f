"""The simulated platform key: where it lives, how it is created, who trusts it by default.

The key is an Ed25519 key in ``$SECURETF_HOME/sim-platform-key.pem`` (default
``~/.config/securetf``), mode 0600, created on first use. Anyone who can read it can forge
simulated evidence: it stands in for a TEE vendor's key and protects nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from securetf._fsutil import read_file, write_private_file
from securetf.crypto import SigningKey, VerifyKey
from securetf.errors import UsageError

__all__ = ["KEY_FILE", "default_sim_trust", "load_or_create_platform_key", "securetf_home"]

KEY_FILE = "sim-platform-key.pem"


def securetf_home(env: Mapping[str, str] | None = None) -> Path:
    """``$SECURETF_HOME``, or ``~/.config/securetf``."""
    env = os.environ if env is None else env
    value = env.get("SECURETF_HOME", "")
    return Path(value) if value else Path.home() / ".config" / "securetf"


def _load(path: Path) -> SigningKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UsageError(
            f"{path} has mode {mode:04o}; a platform key must be private: chmod 600 {path}"
        )
    return SigningKey.from_pem(read_file(path, "sim platform key"), source=str(path))


def load_or_create_platform_key(home: Path | None = None) -> SigningKey:
    """The local simulated platform key, created (mode 0600) if it does not exist yet."""
    home = securetf_home() if home is None else home
    path = home / KEY_FILE
    if path.exists():
        return _load(path)
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {home}: {exc.strerror}") from exc
    key = SigningKey.generate()
    try:
        write_private_file(path, key.to_pem())
    except UsageError:
        if path.exists():  # another process created it first: use theirs
            return _load(path)
        raise
    return key


def default_sim_trust(home: Path | None = None) -> frozenset[VerifyKey]:
    """The platform keys a sim verifier on this machine trusts by default: the local one."""
    return frozenset({load_or_create_platform_key(home).verify_key()})

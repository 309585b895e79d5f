"""Pinned CAS identities, kept in ``$SECURETF_HOME/cas-pins/`` after ``securetf cas attest``.

Without a pin, the SDK and the CLI refuse to talk to a CAS.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from securetf._fsutil import atomic_write
from securetf.attestation.sim_key import securetf_home
from securetf.errors import UsageError


@dataclass(frozen=True)
class CasPin:
    url: str
    certificate_pem: str
    audit_public_key: str
    measurement: str
    tee: str
    #: The transparency log's note key (vkey), endorsed by the audit key; None for a CAS
    #: attested before it had a log.
    log_vkey: str | None = None
    #: The witnesses (cosignature vkeys) the CAS requires, and how many of them must have
    #: cosigned a checkpoint before it counts (0: none required).
    log_witnesses: tuple[str, ...] = field(default=())
    log_witness_threshold: int = 0


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise UsageError(f"a CAS URL looks like https://127.0.0.1:8081, not {url!r}")
    return parts.hostname, parts.port or 443


def cas_file_stem(url: str) -> str:
    """The part of a file name that stands for the CAS at ``url``: ``<host>_<port>``."""
    host, port = split_url(url)
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", host)
    return f"{safe}_{port}"


def _path(url: str, home: Path | None) -> Path:
    return (home or securetf_home()) / "cas-pins" / f"{cas_file_stem(url)}.json"


def save_pin(pin: CasPin, home: Path | None = None) -> Path:
    path = _path(pin.url, home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, json.dumps(asdict(pin), indent=2).encode(), mode=0o600)
    return path


def load_pin(url: str, home: Path | None = None) -> CasPin:
    path = _path(url, home)
    try:
        data = json.loads(path.read_text())
        data["log_witnesses"] = tuple(data.get("log_witnesses", ()))
        return CasPin(**data)
    except FileNotFoundError:
        raise UsageError(
            f"the CAS at {url} is not attested yet: run 'securetf cas attest --cas {url}' "
            "to verify its evidence and pin its certificate"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"the pin file {path} is damaged; attest the CAS again") from exc

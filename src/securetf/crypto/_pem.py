"""Loading unencrypted PEM private keys, with one error for anything else."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from securetf.errors import UsageError


def load_private_pem(data: bytes, *, source: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source} is not an unencrypted PEM private key") from exc

"""AMD's root (ARK) and signing (ASK) certificates for each SEV-SNP product, as bundled."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

from securetf.crypto import Certificate

__all__ = ["PRODUCTS", "AmdRoots", "bundled_roots"]

PRODUCTS = ("Milan", "Genoa", "Turin")


@dataclass(frozen=True)
class AmdRoots:
    """The trust anchors of one product: ARK (self-signed root) and ASK (signs VCEKs)."""

    ark: Certificate
    ask: Certificate


@functools.cache
def bundled_roots() -> dict[str, AmdRoots]:
    """The public ARK/ASK certificates shipped in ``securetf/attestation/amd``."""
    base = files("securetf.attestation").joinpath("amd")
    roots = {}
    for product in PRODUCTS:
        name = product.lower()
        roots[product] = AmdRoots(
            ark=Certificate.load(base.joinpath(f"ark-{name}.pem").read_bytes(), what="ARK"),
            ask=Certificate.load(base.joinpath(f"ask-{name}.pem").read_bytes(), what="ASK"),
        )
    return roots

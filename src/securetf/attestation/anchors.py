"""Test roots: the trust anchors of emulated hardware, given to a verifier by its operator.

A verifier always trusts the vendors' bundled roots (Intel SGX Root CA, AMD's ARK/ASK).
Given :class:`EmulatedRoots` as well, it also verifies evidence that chains to them, with
the same code, and marks the claims ``test_roots``: appraisal refuses such claims unless the
policy names ``test-roots`` (:mod:`securetf.attestation.appraisal`). The roots only decide
which chain is checked; they never relax a check.

On disk (``securetf cas serve --test-roots DIR``; written by
:func:`securetf.attestation.emulated.hardware.create`)::

    intel-root.der            the test "Intel SGX Root CA"      (optional)
    amd-ark.pem amd-ask.pem   the test ARK and ASK of one product (optional, together)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securetf._fsutil import read_file
from securetf.attestation._amd_roots import PRODUCTS, AmdRoots
from securetf.crypto import Certificate
from securetf.errors import AuthenticationError, UsageError

__all__ = ["EmulatedRoots"]

INTEL_FILE = "intel-root.der"
ARK_FILE, ASK_FILE = "amd-ark.pem", "amd-ask.pem"


@dataclass(frozen=True)
class EmulatedRoots:
    intel: Certificate | None = None
    amd: Mapping[str, AmdRoots] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> EmulatedRoots:
        """Read the roots in ``directory``; at least one set must be there."""
        if not directory.is_dir():
            raise UsageError(f"--test-roots: {directory} is not a directory")
        intel = None
        if (directory / INTEL_FILE).exists():
            intel = Certificate.load(read_file(directory / INTEL_FILE, "test Intel root"))
        amd: dict[str, AmdRoots] = {}
        have_ark, have_ask = (directory / ARK_FILE).exists(), (directory / ASK_FILE).exists()
        if have_ark != have_ask:
            raise UsageError(f"--test-roots: {directory} needs both {ARK_FILE} and {ASK_FILE}")
        if have_ark:
            ark = Certificate.load(read_file(directory / ARK_FILE, "test ARK"), what="test ARK")
            ask = Certificate.load(read_file(directory / ASK_FILE, "test ASK"), what="test ASK")
            amd[_product(ask)] = AmdRoots(ark=ark, ask=ask)
        if intel is None and not amd:
            raise UsageError(
                f"--test-roots: {directory} holds neither {INTEL_FILE} nor {ARK_FILE}/{ASK_FILE}"
            )
        return cls(intel=intel, amd=amd)

    def amd_issuer_of(self, vcek: Certificate) -> dict[str, AmdRoots] | None:
        """The test roots whose ASK signed ``vcek``, or None when no test ASK did."""
        for product, roots in self.amd.items():
            if vcek.issuer_cn != roots.ask.subject_cn:
                continue
            try:
                vcek.verify_signed_by(roots.ask)
            except AuthenticationError:
                continue
            return {product: roots}
        return None


def _product(ask: Certificate) -> str:
    for product in PRODUCTS:
        if ask.subject_cn == f"SEV-{product}":
            return product
    raise UsageError(f"the test ASK's name {ask.subject_cn!r} is not SEV-<product>")

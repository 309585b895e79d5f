"""Which TEE are we in, and the producer for the TEE a caller asks for.

Simulation is never detected: it must be asked for by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from securetf.attestation.claims import check_tee
from securetf.attestation.evidence import Producer
from securetf.attestation.gramine import GRAMINE_ROOT, GramineProducer, gramine_available
from securetf.attestation.sim_producer import SimProducer
from securetf.attestation.tsm import TSM_ROOT, ConfigfsTsmProducer, PathOp, tsm_provider
from securetf.errors import AttestationError, UsageError

__all__ = ["detect_tee", "producer_for"]


def detect_tee(
    *,
    tsm_root: Path = TSM_ROOT,
    gramine_root: Path = GRAMINE_ROOT,
    mkdir: PathOp = os.mkdir,
    rmdir: PathOp = os.rmdir,
) -> str:
    """``sgx`` (Gramine), ``tdx`` or ``sev-snp`` (configfs-tsm); raise if there is none."""
    if gramine_available(gramine_root):
        return "sgx"
    if tsm_root.is_dir():
        return tsm_provider(tsm_root, mkdir=mkdir, rmdir=rmdir)
    raise AttestationError(
        f"no TEE found: neither Gramine's {gramine_root} nor configfs-tsm's {tsm_root}; "
        "run inside an SGX enclave or a TDX/SNP guest, or choose --tee sim for development"
    )


def producer_for(
    tee: str,
    *,
    measurement: bytes | None = None,
    home: Path | None = None,
    tsm_root: Path = TSM_ROOT,
    gramine_root: Path = GRAMINE_ROOT,
    mkdir: PathOp = os.mkdir,
    rmdir: PathOp = os.rmdir,
) -> Producer:
    """The producer for ``tee``, after checking that this machine really is that TEE."""
    check_tee(tee)
    if tee == "sim":
        if measurement is None:
            raise UsageError("the sim producer needs the service measurement")
        return SimProducer(measurement, home=home)
    found = detect_tee(tsm_root=tsm_root, gramine_root=gramine_root, mkdir=mkdir, rmdir=rmdir)
    if found != tee:
        raise AttestationError(f"asked for {tee} evidence, but this machine offers {found}")
    if tee == "sgx":
        return GramineProducer(root=gramine_root)
    return ConfigfsTsmProducer(tee, root=tsm_root, mkdir=mkdir, rmdir=rmdir)

"""Which TEE are we in, and the producer for the TEE a caller asks for.

Simulation is never detected: it must be asked for by name.

``SECURETF_TSM_ROOT`` and ``SECURETF_GRAMINE_ROOT`` move the interfaces elsewhere (emulated
hardware mounts them at a path of its own). Whoever sets them can only choose which device
is asked: the evidence still has to verify, and an emulated device's evidence chains to
test roots, which a policy refuses unless it names ``test-roots``.
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

__all__ = ["GRAMINE_ROOT_ENV", "TSM_ROOT_ENV", "detect_tee", "producer_for"]

TSM_ROOT_ENV = "SECURETF_TSM_ROOT"
GRAMINE_ROOT_ENV = "SECURETF_GRAMINE_ROOT"


def _root(given: Path | None, env: str, default: Path) -> Path:
    if given is not None:
        return given
    value = os.environ.get(env)
    return Path(value) if value else default


def detect_tee(
    *,
    tsm_root: Path | None = None,
    gramine_root: Path | None = None,
    mkdir: PathOp = os.mkdir,
    rmdir: PathOp = os.rmdir,
) -> str:
    """``sgx`` (Gramine), ``tdx`` or ``sev-snp`` (configfs-tsm); raise if there is none."""
    tsm_root = _root(tsm_root, TSM_ROOT_ENV, TSM_ROOT)
    gramine_root = _root(gramine_root, GRAMINE_ROOT_ENV, GRAMINE_ROOT)
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
    tsm_root: Path | None = None,
    gramine_root: Path | None = None,
    mkdir: PathOp = os.mkdir,
    rmdir: PathOp = os.rmdir,
) -> Producer:
    """The producer for ``tee``, after checking that this machine really is that TEE."""
    check_tee(tee)
    tsm_root = _root(tsm_root, TSM_ROOT_ENV, TSM_ROOT)
    gramine_root = _root(gramine_root, GRAMINE_ROOT_ENV, GRAMINE_ROOT)
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

"""One emulated machine: its test PKIs on disk, a device behind the real producer interface,
and the local service that hands out its collateral (PCCS for SGX/TDX, KDS for SEV-SNP).

A hardware directory (:func:`create`)::

    intel/   the emulated Intel PKI (keys 0600)         amd/   the emulated AMD PKI
    roots/   the public test roots a verifier is given  (securetf cas serve --test-roots)

:class:`EmulatedMachine` mounts, for its TEE, Gramine's ``/dev/attestation`` (sgx) or a
configfs-tsm ``report`` tree (tdx, sev-snp) at a path of its own, and serves the
collateral; the runtime and the CAS are pointed at them by ``SECURETF_GRAMINE_ROOT`` /
``SECURETF_TSM_ROOT`` and ``--pccs`` / ``--kds``. The evidence it makes reports the
emulated image's fixed identity (:data:`IMAGE`): what a policy's reference values name.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType

from securetf._fsutil import atomic_write
from securetf.attestation.anchors import ARK_FILE, ASK_FILE, INTEL_FILE, EmulatedRoots
from securetf.attestation.dcap import Collateral
from securetf.attestation.detect import GRAMINE_ROOT_ENV, TSM_ROOT_ENV
from securetf.attestation.emulated._device_fuse import FuseDevice
from securetf.attestation.emulated.amd import AmdTestPki
from securetf.attestation.emulated.devices import EmulatedGramine, EmulatedRtmr, EmulatedTsm
from securetf.attestation.emulated.intel import DEFAULT_RTMRS, IntelTestPki
from securetf.attestation.emulated.kds import serve_kds
from securetf.attestation.emulated.pccs import serve_pccs
from securetf.attestation.evidence import Producer
from securetf.attestation.gramine import GramineProducer
from securetf.attestation.reference import reference_values
from securetf.attestation.rtmr import RTMR_LOG_ENV, RTMR_ROOT_ENV
from securetf.attestation.snp_certs import vcek_from_cert_table
from securetf.attestation.tsm import ConfigfsTsmProducer
from securetf.attestation.verify import verify_evidence
from securetf.errors import UsageError

__all__ = ["TEES", "EmulatedMachine", "create"]

TEES = ("sgx", "tdx", "sev-snp")


def create(directory: Path, *, now: int | None = None, days: int = 30) -> None:
    """Generate the PKIs of one emulated machine (valid ``days`` days) into ``directory``."""
    start = int(time.time()) if now is None else now
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; emulated hardware goes in a new directory")
    intel = IntelTestPki.generate(now=start, days=days)
    amd = AmdTestPki.generate(now=start, days=days)
    intel.save(directory / "intel")
    amd.save(directory / "amd")
    roots = directory / "roots"
    roots.mkdir(mode=0o755)
    atomic_write(roots / INTEL_FILE, intel.root_der)
    ark, ask = amd.roots()[amd.product].ark, amd.roots()[amd.product].ask
    atomic_write(roots / ARK_FILE, ark.pem())
    atomic_write(roots / ASK_FILE, ask.pem())


class EmulatedMachine:
    """A running emulated TEE (``with`` it): the device at ``device_root``, and ``pccs_url``
    (sgx, tdx) or ``kds_url`` (sev-snp)."""

    def __init__(self, directory: Path, tee: str, device_root: Path) -> None:
        if tee not in TEES:
            raise UsageError(f"emulated hardware is {', '.join(TEES)}, not {tee!r}")
        self.tee, self.device_root = tee, device_root
        self.pccs_url: str | None = None
        self.kds_url: str | None = None
        self._stack = contextlib.ExitStack()
        self._directory = directory

    def __enter__(self) -> EmulatedMachine:
        try:
            self.device_root.mkdir(parents=True, exist_ok=True)
            self._stack.enter_context(self._device())
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _device(self) -> FuseDevice:
        if self.tee == "sev-snp":
            amd = AmdTestPki.load(self._directory / "amd")
            kds = serve_kds(amd)
            self._stack.callback(kds.close)
            self.kds_url = kds.url
            return EmulatedTsm(
                self.device_root, "sev_guest", lambda data: (amd.report(data), amd.cert_table())
            )
        intel = IntelTestPki.load(self._directory / "intel")
        pccs = serve_pccs(intel)
        self._stack.callback(pccs.close)
        self.pccs_url = pccs.url
        if self.tee == "sgx":
            return EmulatedGramine(self.device_root, lambda data: intel.quote("sgx", data))
        # The TD's RTMRs, which the runtime extends and every quote reports.
        self.rtmr_root.mkdir(parents=True, exist_ok=True)
        rtmr = self._stack.enter_context(EmulatedRtmr(self.rtmr_root, initial=DEFAULT_RTMRS))

        def quote(data: bytes) -> tuple[bytes, bytes]:
            r0, r1, r2, r3 = rtmr.values
            return intel.quote("tdx", data, rtmr0=r0, rtmr1=r1, rtmr2=r2, rtmr3=r3), b""

        return EmulatedTsm(self.device_root, "tdx_guest", quote)

    @property
    def rtmr_root(self) -> Path:
        """TDX: where the TD's RTMRs are (``SECURETF_RTMR_ROOT`` for the runtime)."""
        return self.device_root.with_name(self.device_root.name + "-rtmr")

    @property
    def rtmr_log(self) -> Path:
        """TDX: the runtime's RTMR event log of this emulated boot (``SECURETF_RTMR_LOG``)."""
        return self.device_root.with_name(self.device_root.name + "-rtmr.log")

    def reference(self, *, now: int | None = None) -> dict[str, object]:
        """The emulated image's reference values, as a policy names them: what
        ``securetf attest verify --json`` prints for its evidence, with TDX's ``rtmr3`` at
        its boot value (the runtime's events extend it; docs/attestation-rtmr.md)."""
        at = int(time.time()) if now is None else now
        if self.tee == "sgx":
            producer: Producer = GramineProducer(root=self.device_root)
        else:
            producer = ConfigfsTsmProducer(self.tee, root=self.device_root)
        evidence = producer.evidence(bytes(64))
        roots = EmulatedRoots.load(self._directory / "roots")
        if self.tee == "sev-snp":
            vcek = vcek_from_cert_table(evidence.aux)
            claims = verify_evidence(self.tee, evidence.data, now=at, vcek=vcek, test_roots=roots)
        else:
            intel = IntelTestPki.load(self._directory / "intel")
            collateral = Collateral.load(intel.collateral_json(self.tee).encode())
            claims = verify_evidence(
                self.tee, evidence.data, now=at, collateral=collateral, test_roots=roots
            )
        values = reference_values(claims)
        if self.tee == "tdx":
            values["rtmr3"] = DEFAULT_RTMRS[3].hex()
        return values

    def environment(self) -> dict[str, str]:
        """The environment that points securetf (runtime or CAS) at this machine."""
        if self.tee == "sgx":
            return {GRAMINE_ROOT_ENV: str(self.device_root)}
        env = {TSM_ROOT_ENV: str(self.device_root)}
        if self.tee == "tdx":
            env |= {RTMR_ROOT_ENV: str(self.rtmr_root), RTMR_LOG_ENV: str(self.rtmr_log)}
        return env

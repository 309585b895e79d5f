"""TDX and SEV-SNP evidence through Linux's configfs-tsm (/sys/kernel/config/tsm/report).

The kernel ABI (Documentation/ABI/testing/configfs-tsm): ``mkdir report/<name>`` makes an
entry holding ``inblob`` (write up to 64 bytes of report data), ``outblob`` (read: the
quote or report), ``auxblob`` (SNP: certificate table), ``provider`` (``tdx_guest`` or
``sev_guest``) and ``generation`` (counts writes; equal before and after reading
``outblob`` means no other writer raced us). ``rmdir`` removes the entry.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from securetf.attestation.evidence import Evidence, check_report_data
from securetf.errors import AttestationError

__all__ = ["PROVIDERS", "TSM_ROOT", "ConfigfsTsmProducer", "tsm_provider"]

TSM_ROOT = Path("/sys/kernel/config/tsm/report")
PROVIDERS = {"tdx_guest": "tdx", "sev_guest": "sev-snp"}

PathOp = Callable[[Path], None]


@contextlib.contextmanager
def _entry(root: Path, mkdir: PathOp, rmdir: PathOp) -> Iterator[Path]:
    path = root / f"securetf-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        mkdir(path)
    except OSError as exc:
        raise AttestationError(
            f"cannot create a configfs-tsm report in {root}: {exc.strerror} "
            "(not a TDX/SNP guest, or configfs not mounted?)"
        ) from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            rmdir(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AttestationError(f"cannot read {path}: {exc.strerror}") from None


def tsm_provider(
    root: Path = TSM_ROOT, *, mkdir: PathOp = os.mkdir, rmdir: PathOp = os.rmdir
) -> str:
    """The TEE behind configfs-tsm at ``root`` (``tdx`` or ``sev-snp``); raises if none."""
    with _entry(root, mkdir, rmdir) as entry:
        provider = _read(entry / "provider").decode("ascii", "replace").strip()
    if provider not in PROVIDERS:
        raise AttestationError(f"configfs-tsm provider {provider!r} is not one securetf knows")
    return PROVIDERS[provider]


class ConfigfsTsmProducer:
    """Asks the kernel for a TDX quote or SNP report binding the given report data.

    ``root``, ``mkdir`` and ``rmdir`` are injectable so tests can use a fake tree.
    """

    def __init__(
        self,
        tee: str,
        *,
        root: Path = TSM_ROOT,
        mkdir: PathOp = os.mkdir,
        rmdir: PathOp = os.rmdir,
    ) -> None:
        if tee not in PROVIDERS.values():
            raise AttestationError(f"configfs-tsm produces tdx or sev-snp evidence, not {tee}")
        self.tee = tee
        self._root, self._mkdir, self._rmdir = root, mkdir, rmdir

    def evidence(self, report_data: bytes) -> Evidence:
        check_report_data(report_data)
        with _entry(self._root, self._mkdir, self._rmdir) as entry:
            # 1. The provider is the TEE we were asked for.
            provider = _read(entry / "provider").decode("ascii", "replace").strip()
            if PROVIDERS.get(provider) != self.tee:
                raise AttestationError(
                    f"asked for {self.tee} evidence but configfs-tsm's provider is {provider!r}"
                )
            # 2. Write the report data, read the evidence, and check nobody raced us.
            try:
                (entry / "inblob").write_bytes(report_data)
            except OSError as exc:
                raise AttestationError(f"cannot write report data: {exc.strerror}") from None
            before = self._read_generation(entry)
            data = _read(entry / "outblob")
            aux_path = entry / "auxblob"
            aux = _read(aux_path) if aux_path.exists() else b""
            if self._read_generation(entry) != before:
                raise AttestationError(
                    "another process wrote to the configfs-tsm report while we read it; retry"
                )
        if not data:
            raise AttestationError("configfs-tsm returned empty evidence")
        return Evidence(tee=self.tee, data=data, aux=aux)

    def _read_generation(self, entry: Path) -> bytes:
        return _read(entry / "generation").strip()

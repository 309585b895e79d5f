"""Emulated TEE devices behind the real producer interfaces, as FUSE file systems.

Each device serves, at a mount point of the caller's choice (never the real path), the
files a TEE's kernel or library interface offers, so the real producers run unchanged:

- :class:`EmulatedGramine`: Gramine's ``/dev/attestation`` (``GramineProducer(root=...)``);
- :class:`EmulatedTsm`: configfs-tsm's ``report/`` directory
  (``ConfigfsTsmProducer(tee, root=...)``, ``tsm_provider(root)``, with real ``os.mkdir``);
- :class:`EmulatedRtmr`: the TDX ``measurements/`` directory of Linux 6.16+
  (:func:`securetf.attestation.rtmr.extend_rtmr3` with ``root=...``).

The evidence itself comes from an injected callable, so these devices carry no key and
no format: pair them with the emulated Intel and AMD evidence makers, or with a trivial
function in tests. Mounting needs /dev/fuse and root (or fusermount3)::

    with EmulatedTsm(tmp / "tsm", "tdx_guest", lambda rd: (quote_for(rd), b"")) as dev:
        evidence = ConfigfsTsmProducer("tdx", root=dev.mountpoint).evidence(report_data)
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from securetf.attestation.claims import REPORT_DATA_SIZE
from securetf.attestation.emulated._device_fuse import FuseDevice
from securetf.attestation.emulated._device_ops import Attr, Parts, refuse
from securetf.attestation.tsm import PROVIDERS
from securetf.errors import UsageError

__all__ = ["RTMR_COUNT", "RTMR_SIZE", "EmulatedGramine", "EmulatedRtmr", "EmulatedTsm"]

log = logging.getLogger("securetf.attestation.emulated")

RTMR_COUNT = 4
RTMR_SIZE = 48  # SHA-384


class EmulatedGramine(FuseDevice):
    """Gramine's ``/dev/attestation`` for one emulated enclave.

    As in Gramine (libos/src/fs/dev/attestation.c) the report data is one value for the
    whole enclave: writing ``user_report_data`` sets it (shorter writes are zero-padded,
    longer ones cut to 64 bytes), and each open of ``quote`` produces
    ``make_quote(report_data)`` (a failure reads as EACCES). ``attestation_type`` reads
    ``dcap``, without a newline, as Gramine's does. Every process that uses the mount
    shares the one value: the device is one enclave, not a service for many.
    ``keys/_sgx_mrenclave`` reads the enclave's 16-byte sealing key (``sealing_key``;
    by default derived from the mount point, so one emulated enclave keeps its key across
    mounts).
    """

    kind = "Gramine"

    def __init__(
        self,
        mountpoint: Path,
        make_quote: Callable[[bytes], bytes],
        *,
        sealing_key: bytes | None = None,
    ) -> None:
        super().__init__(mountpoint)
        self._make_quote = make_quote
        seal = (
            sealing_key
            or hashlib.sha256(b"emulated sgx sealing key\0" + bytes(mountpoint)).digest()
        )
        self._keys = {"_sgx_mrenclave": Attr(0o444, show=lambda: seal[:16])}
        self._lock = threading.Lock()
        self._report_data = bytes(REPORT_DATA_SIZE)
        self._files = {
            "attestation_type": Attr(0o444, show=lambda: b"dcap"),
            "quote": Attr(0o444, show=self._quote),
            "user_report_data": Attr(0o666, show=lambda: self.report_data, store=self._save),
        }

    @property
    def report_data(self) -> bytes:
        """The report data the next quote will bind."""
        with self._lock:
            return self._report_data

    def lookup(self, parts: Parts) -> Attr | list[str] | None:
        if not parts:
            return sorted([*self._files, "keys"])
        if parts[0] == "keys":
            return (
                sorted(self._keys)
                if len(parts) == 1
                else (self._keys.get(parts[1]) if len(parts) == 2 else None)
            )
        return self._files.get(parts[0]) if len(parts) == 1 else None

    def _save(self, data: bytes) -> None:
        with self._lock:
            self._report_data = data[:REPORT_DATA_SIZE].ljust(REPORT_DATA_SIZE, b"\0")

    def _quote(self) -> bytes:
        report_data = self.report_data
        try:
            return self._make_quote(report_data)
        except Exception:
            log.exception("the emulated Gramine quote maker failed: answering EACCES")
            raise refuse(errno.EACCES) from None


@dataclass
class _Report:
    """One configfs-tsm report entry: what was written, and the evidence cached for it."""

    inblob: bytes | None = None
    generation: int = 0
    cached: tuple[int, bytes, bytes] | None = None  # generation, outblob, auxblob


class EmulatedTsm(FuseDevice):
    """configfs-tsm's ``report/`` directory (Documentation/ABI/testing/configfs-tsm).

    The mount point is the ``report`` directory itself. ``mkdir`` of a name makes an entry
    with ``inblob`` (write-only, up to 64 bytes, stored on close), ``outblob``,
    ``provider``, ``generation`` and, for ``sev_guest``, ``auxblob``; ``rmdir`` removes it.
    Each store to ``inblob`` advances ``generation``; ``outblob`` and ``auxblob`` come from
    one ``make_evidence(report_data)`` call per generation, as the kernel caches them.
    ``report_data`` is the inblob zero-padded to 64 bytes for ``sev_guest`` (the SNP
    driver pads), while ``tdx_guest`` refuses anything but 64 bytes with EINVAL (as
    tdx-guest.c does). A failing ``make_evidence`` reads as EIO.
    """

    kind = "configfs-tsm"

    def __init__(
        self,
        mountpoint: Path,
        provider: str,
        make_evidence: Callable[[bytes], tuple[bytes, bytes]],
    ) -> None:
        if provider not in PROVIDERS:
            raise UsageError(f"configfs-tsm providers are {', '.join(PROVIDERS)}, not {provider}")
        super().__init__(mountpoint)
        self.provider = provider
        self._make_evidence = make_evidence
        self._lock = threading.Lock()
        self._reports: dict[str, _Report] = {}
        self._made = 0

    @property
    def entries(self) -> list[str]:
        """The report entries that exist now."""
        with self._lock:
            return sorted(self._reports)

    @property
    def evidence_made(self) -> int:
        """How many times ``make_evidence`` was called (once per generation read)."""
        with self._lock:
            return self._made

    def lookup(self, parts: Parts) -> Attr | list[str] | None:
        with self._lock:
            if not parts:
                return sorted(self._reports)
            report = self._reports.get(parts[0])
        if report is None or len(parts) > 2:
            return None
        files = self._files(report)
        return sorted(files) if len(parts) == 1 else files.get(parts[1])

    def mkdir(self, parts: Parts) -> None:
        if len(parts) != 1:
            raise refuse(errno.EPERM)  # entries hold attributes, not groups
        with self._lock:
            if parts[0] in self._reports:
                raise refuse(errno.EEXIST)
            self._reports[parts[0]] = _Report()

    def rmdir(self, parts: Parts) -> None:
        with self._lock:
            if len(parts) != 1 or self._reports.pop(parts[0], None) is None:
                raise refuse(errno.ENOENT)

    def _files(self, report: _Report) -> dict[str, Attr]:
        files = {
            "inblob": Attr(0o200, store=lambda data: self._write(report, data), max_size=64),
            "outblob": Attr(0o444, show=lambda: self._evidence(report)[0]),
            "provider": Attr(0o444, show=lambda: f"{self.provider}\n".encode()),
            "generation": Attr(0o444, show=lambda: f"{self._generation(report)}\n".encode()),
        }
        if self.provider == "sev_guest":
            files["auxblob"] = Attr(0o444, show=lambda: self._evidence(report)[1])
        return files

    def _generation(self, report: _Report) -> int:
        with self._lock:
            return report.generation

    def _write(self, report: _Report, data: bytes) -> None:
        with self._lock:
            report.inblob = data
            report.generation += 1

    def _evidence(self, report: _Report) -> tuple[bytes, bytes]:
        with self._lock:
            if report.cached is not None and report.cached[0] == report.generation:
                return report.cached[1], report.cached[2]
            inblob = report.inblob or b""
            if self.provider == "tdx_guest" and len(inblob) != REPORT_DATA_SIZE:
                raise refuse(errno.EINVAL)
            try:
                outblob, auxblob = self._make_evidence(inblob.ljust(REPORT_DATA_SIZE, b"\0"))
            except Exception:
                log.exception("the emulated %s evidence maker failed: answering EIO", self.provider)
                raise refuse(errno.EIO) from None
            self._made += 1
            report.cached = (report.generation, outblob, auxblob)
            return outblob, auxblob


class EmulatedRtmr(FuseDevice):
    """The TDX runtime measurement registers as Linux 6.16+ shows them (tsm-mr).

    Files ``rtmr0:sha384`` .. ``rtmr3:sha384`` in the mount point (which plays
    ``/sys/class/misc/tdx_guest/measurements``): reading gives the 48-byte value; one
    ``write()`` of exactly 48 bytes at offset 0 extends it (``SHA-384(old || data)``),
    anything else fails with EINVAL, as Documentation/ABI/testing/
    sysfs-devices-virtual-misc-tdx_guest says. The kernel marks all four registers
    writable; this device lets only ``writable`` (RTMR2 and RTMR3 by default) be
    extended, so a test notices software that touches the boot registers: the others
    refuse to open for writing (EACCES). :attr:`values` feeds a test quote maker.
    """

    kind = "TDX RTMR"

    def __init__(
        self,
        mountpoint: Path,
        *,
        initial: Sequence[bytes] | None = None,
        writable: Collection[int] = (2, 3),
    ) -> None:
        values = list(initial) if initial is not None else [bytes(RTMR_SIZE)] * RTMR_COUNT
        if len(values) != RTMR_COUNT or any(len(v) != RTMR_SIZE for v in values):
            raise UsageError(f"initial RTMR values are {RTMR_COUNT} times {RTMR_SIZE} bytes")
        if not set(writable) <= set(range(RTMR_COUNT)):
            raise UsageError(f"RTMR indexes are 0..{RTMR_COUNT - 1}, not {sorted(writable)}")
        super().__init__(mountpoint)
        self._lock = threading.Lock()
        self._values = values
        self._files = {
            f"rtmr{i}:sha384": self._attr(i, writable=i in set(writable)) for i in range(RTMR_COUNT)
        }

    @property
    def values(self) -> tuple[bytes, ...]:
        """RTMR0..RTMR3 now, for a quote maker to put into the TD report."""
        with self._lock:
            return tuple(self._values)

    def lookup(self, parts: Parts) -> Attr | list[str] | None:
        if not parts:
            return sorted(self._files)
        return self._files.get(parts[0]) if len(parts) == 1 else None

    def _attr(self, index: int, *, writable: bool) -> Attr:
        def show() -> bytes:
            return self.values[index]

        def extend(data: bytes) -> None:
            with self._lock:
                self._values[index] = hashlib.sha384(self._values[index] + data).digest()

        if not writable:
            return Attr(0o444, show=show, size=RTMR_SIZE)
        return Attr(
            0o644, show=show, store=extend, max_size=RTMR_SIZE, size=RTMR_SIZE, whole_writes=True
        )

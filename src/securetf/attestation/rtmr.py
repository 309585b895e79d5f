"""TDX runtime measurement: extend RTMR3 with the app's measurement, and replay its log.

The kernel interface (Linux 6.16+, the tsm-mr library used by
drivers/virt/coco/tdx-guest/tdx-guest.c; ABI in
Documentation/ABI/testing/sysfs-devices-virtual-misc-tdx_guest) is one sysfs binary file
per register, ``/sys/devices/virtual/misc/tdx_guest/measurements/rtmr[0123]:sha384``,
reached through the class link ``/sys/class/misc/tdx_guest``: reading returns the current
48-byte value; writing extends the register with the written buffer, and "all writes must
start at offset 0 and be 48 bytes in size" (anything else fails with EINVAL). The TDX
module's TDG.MR.RTMR.EXTEND computes ``RTMR = SHA-384(RTMR || data)``.

What securetf extends, and why the digest is domain-separated, is in
docs/attestation-rtmr.md. The runtime appends one JSON line per extension to an event log,
so a verifier can replay it (:func:`replay_event_log`) and compare the result with the
RTMR3 of the quote, or compute the value a policy pins (:func:`expected_rtmr3`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from securetf.errors import AttestationError, UsageError

__all__ = [
    "APP_EVENT",
    "APP_RTMR",
    "MAX_EVENTS",
    "RTMR_LOG",
    "RTMR_LOG_ENV",
    "RTMR_ROOT",
    "RTMR_ROOT_ENV",
    "RTMR_SIZE",
    "RtmrEvent",
    "app_event",
    "app_event_digest",
    "append_event",
    "expected_rtmr3",
    "extend_rtmr3",
    "measure_app",
    "read_event_log",
    "read_rtmr",
    "replay_event_log",
    "replay_rtmr",
    "runtime_measure_app",
]

RTMR_ROOT = Path("/sys/class/misc/tdx_guest/measurements")
RTMR_ROOT_ENV = "SECURETF_RTMR_ROOT"
#: Where the runtime keeps the log of what it extended: memory inside the TD, shared by every
#: securetf run of this boot (the register counts them all).
RTMR_LOG = Path("/run/securetf/rtmr3.log")
RTMR_LOG_ENV = "SECURETF_RTMR_LOG"
#: Most events a verifier replays (each securetf run of a boot adds one).
MAX_EVENTS = 1024
RTMR_SIZE = 48
#: The register securetf extends: RTMR3 is left to the guest's own software (the firmware
#: and boot loader use RTMR0..2).
APP_RTMR = 3
APP_EVENT = "securetf.app"
_APP_TAG = APP_EVENT.encode() + b"\0"
_MEASUREMENT = re.compile(r"^sha256:([0-9a-f]{64})$")
_DIGEST = re.compile(r"^[0-9a-f]{96}$")

#: The errors that mean "this machine has no such interface" rather than "it failed".
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def _rtmr_file(index: int, root: Path) -> Path:
    return root / f"rtmr{index}:sha384"


def _check_digest(digest: bytes) -> bytes:
    if len(digest) != RTMR_SIZE:
        raise UsageError(f"an RTMR is extended with {RTMR_SIZE} bytes, got {len(digest)}")
    return digest


def read_rtmr(index: int, *, root: Path = RTMR_ROOT) -> bytes | None:
    """The current value of RTMR ``index``; None when the kernel does not offer it."""
    path = _rtmr_file(index, root)
    try:
        value = path.read_bytes()
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise AttestationError(f"cannot read {path}: {exc.strerror}") from None
    if len(value) != RTMR_SIZE:
        raise AttestationError(f"{path} gave {len(value)} bytes, not {RTMR_SIZE}")
    return value


def extend_rtmr3(digest48: bytes, *, root: Path = RTMR_ROOT) -> bytes | None:
    """Extend RTMR3 with ``digest48`` and return its new value.

    Returns None when the interface is absent (not a TDX guest, or a kernel before 6.16);
    raises :class:`AttestationError` when it is there but the extension fails, and
    :class:`UsageError` for a digest that is not 48 bytes. The value returned is read back
    after the write: if another process extends RTMR3 at the same time it includes theirs.
    """
    _check_digest(digest48)
    path = _rtmr_file(APP_RTMR, root)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise AttestationError(f"cannot open {path} to extend RTMR3: {exc.strerror}") from None
    try:
        written = os.write(fd, digest48)  # one write of 48 bytes at offset 0: the ABI
    except OSError as exc:
        raise AttestationError(f"extending RTMR3 through {path} failed: {exc.strerror}") from None
    finally:
        os.close(fd)
    if written != RTMR_SIZE:
        raise AttestationError(f"extending RTMR3 wrote {written} bytes of {RTMR_SIZE}")
    value = read_rtmr(APP_RTMR, root=root)
    if value is None:
        raise AttestationError(f"{path} disappeared after extending RTMR3")
    return value


def replay_rtmr(events: Sequence[bytes], initial: bytes = bytes(RTMR_SIZE)) -> bytes:
    """The register value after extending ``initial`` with each 48-byte event in turn."""
    value = _check_digest(initial)
    for event in events:
        value = hashlib.sha384(value + _check_digest(event)).digest()
    return value


def app_event_digest(measurement: bytes) -> bytes:
    """What securetf extends RTMR3 with for an app: SHA-384(b"securetf.app\\0" || measurement).

    ``measurement`` is the app's 32-byte SHA-256 measurement (``sha256:<hex>`` in a policy).
    The tag makes the register commit to what the event *means*, not only to its bytes: a
    value extended by other software (or another kind of securetf event) cannot replay as
    an app measurement, and the hash turns the 32 bytes into the 48 an extension takes
    without an ambiguous padding. The NUL ends the tag, so no tag is a prefix of another.
    """
    if len(measurement) != 32:
        raise UsageError(f"an app measurement is 32 bytes (SHA-256), got {len(measurement)}")
    return hashlib.sha384(_APP_TAG + measurement).digest()


@dataclass(frozen=True)
class RtmrEvent:
    """One line of the event log: what was extended into which register, and why."""

    rtmr: int
    digest: bytes
    event: str
    measurement: str

    def to_json(self) -> str:
        record = {
            "rtmr": self.rtmr,
            "digest": self.digest.hex(),
            "event": self.event,
            "measurement": self.measurement,
        }
        return json.dumps(record)

    @classmethod
    def from_json(cls, line: str) -> RtmrEvent:
        """Parse and check one log line; an app event's digest must match its measurement."""
        try:
            record = json.loads(line)
        except ValueError:
            raise AttestationError("an RTMR event log line is not JSON") from None
        if not isinstance(record, dict) or set(record) != {
            "rtmr",
            "digest",
            "event",
            "measurement",
        }:
            raise AttestationError("an RTMR event log line lacks or adds fields")
        rtmr, digest, event, measurement = (
            record["rtmr"],
            record["digest"],
            record["event"],
            record["measurement"],
        )
        if type(rtmr) is not int or not 0 <= rtmr <= 3:
            raise AttestationError(f"an RTMR event names register {rtmr!r}")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise AttestationError("an RTMR event digest is not 96 lower-case hex digits")
        if not isinstance(event, str) or not isinstance(measurement, str):
            raise AttestationError("an RTMR event's event and measurement must be text")
        parsed = cls(rtmr, bytes.fromhex(digest), event, measurement)
        if event == APP_EVENT:
            match = _MEASUREMENT.match(measurement)
            if match is None:
                raise AttestationError(f"app event measurement {measurement!r} is not sha256:<hex>")
            if parsed.digest != app_event_digest(bytes.fromhex(match.group(1))):
                raise AttestationError(f"app event digest does not match {measurement}")
        return parsed


def app_event(measurement: bytes) -> RtmrEvent:
    """The RTMR3 event that records the app with this 32-byte measurement."""
    digest = app_event_digest(measurement)
    return RtmrEvent(APP_RTMR, digest, APP_EVENT, "sha256:" + measurement.hex())


def append_event(log: Path, event: RtmrEvent) -> None:
    """Append ``event`` to the JSON-lines log at ``log`` (one write, then fsync)."""
    line = (event.to_json() + "\n").encode()
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AttestationError(f"cannot append to the RTMR log {log}: {exc.strerror}") from None


def read_event_log(lines: Iterable[str]) -> list[RtmrEvent]:
    """Parse a log's lines (blank lines are skipped); raises AttestationError if malformed."""
    return [RtmrEvent.from_json(line) for line in lines if line.strip()]


def replay_event_log(
    events: Iterable[RtmrEvent], rtmr: int = APP_RTMR, initial: bytes = bytes(RTMR_SIZE)
) -> bytes:
    """The value register ``rtmr`` must hold if ``events`` are all that extended it."""
    return replay_rtmr([e.digest for e in events if e.rtmr == rtmr], initial)


def expected_rtmr3(measurements: Sequence[bytes], initial: bytes = bytes(RTMR_SIZE)) -> bytes:
    """RTMR3 after securetf measured these apps, in order, into a register at ``initial``."""
    return replay_rtmr([app_event_digest(m) for m in measurements], initial)


def measure_app(measurement: bytes, *, log: Path, root: Path = RTMR_ROOT) -> bytes | None:
    """Extend RTMR3 with the app's event and log it; None (nothing logged) without RTMRs.

    The log is written after the extension succeeded, so it never names an event the
    register lacks; a crash between the two leaves a log that fails to replay (refused).
    """
    event = app_event(measurement)
    value = extend_rtmr3(event.digest, root=root)
    if value is not None:
        append_event(log, event)
    return value


def runtime_measure_app(measurement: bytes) -> list[str] | None:
    """What ``securetf run`` does on TDX before asking for a quote: extend RTMR3 with the
    app's event where the kernel offers RTMRs (``$SECURETF_RTMR_ROOT``, else
    :data:`RTMR_ROOT`), and return the whole event log of this boot
    (``$SECURETF_RTMR_LOG``, else :data:`RTMR_LOG`) for the CAS to replay; None without RTMRs.
    """
    root = Path(os.environ.get(RTMR_ROOT_ENV) or RTMR_ROOT)
    log = Path(os.environ.get(RTMR_LOG_ENV) or RTMR_LOG)
    if read_rtmr(APP_RTMR, root=root) is None:
        return None
    try:
        log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise AttestationError(f"cannot create the RTMR log's directory: {exc.strerror}") from None
    if measure_app(measurement, log=log, root=root) is None:
        return None
    try:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise AttestationError(f"cannot read the RTMR log {log}: {exc}") from None
    if len(lines) > MAX_EVENTS:
        raise AttestationError(
            f"the RTMR log {log} holds {len(lines)} events, more than a CAS replays "
            f"({MAX_EVENTS}); reboot the TD"
        )
    return lines

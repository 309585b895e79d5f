"""RTMR3: extending through the tsm-mr interface (an emulated one here) and replaying the log."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetf.attestation import ConfigfsTsmProducer
from securetf.attestation.emulated.devices import EmulatedRtmr, EmulatedTsm
from securetf.attestation.rtmr import (
    APP_EVENT,
    RtmrEvent,
    app_event,
    app_event_digest,
    expected_rtmr3,
    extend_rtmr3,
    measure_app,
    read_event_log,
    read_rtmr,
    replay_event_log,
    replay_rtmr,
)
from securetf.errors import AttestationError, Error, UsageError
from securetf.shield.fs import check_fuse


def _fuse_missing() -> str | None:
    try:
        check_fuse()
    except Error as exc:
        return f"emulated devices need FUSE: {exc}"
    return None


needs_fuse = pytest.mark.skipif(_fuse_missing() is not None, reason=str(_fuse_missing()))

APP1, APP2 = hashlib.sha256(b"app one").digest(), hashlib.sha256(b"app two").digest()
ZERO = bytes(48)


@pytest.fixture
def rtmr(tmp_path: Path) -> Iterator[EmulatedRtmr]:
    path = tmp_path / "measurements"
    path.mkdir()
    with EmulatedRtmr(path) as dev:
        yield dev
    with open("/proc/mounts") as f:
        assert str(path.resolve()) not in {line.split()[1] for line in f}


def raw_write(path: Path, data: bytes) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


# -- the device and the kernel ABI -----------------------------------------------------------


@needs_fuse
def test_extending_through_the_device_replays_from_the_log(
    rtmr: EmulatedRtmr, tmp_path: Path
) -> None:
    log = tmp_path / "rtmr.log"
    first = measure_app(APP1, log=log, root=rtmr.mountpoint)
    second = measure_app(APP2, log=log, root=rtmr.mountpoint)
    assert first is not None
    assert second == rtmr.values[3] == read_rtmr(3, root=rtmr.mountpoint)
    events = read_event_log(log.read_text().splitlines())
    assert [e.measurement for e in events] == ["sha256:" + APP1.hex(), "sha256:" + APP2.hex()]
    assert replay_event_log(events) == second
    assert expected_rtmr3([APP1, APP2]) == second
    assert rtmr.values[:3] == (ZERO, ZERO, ZERO)  # nothing else moved


@needs_fuse
def test_extend_rtmr3_returns_the_new_value(rtmr: EmulatedRtmr) -> None:
    digest = hashlib.sha384(b"event").digest()
    assert extend_rtmr3(digest, root=rtmr.mountpoint) == hashlib.sha384(ZERO + digest).digest()


@needs_fuse
def test_a_write_of_the_wrong_size_is_refused(rtmr: EmulatedRtmr) -> None:
    path = rtmr.mountpoint / "rtmr3:sha384"
    for size in (47, 49, 1):
        with pytest.raises(OSError, match="Invalid argument") as info:
            raw_write(path, bytes(size))
        assert info.value.errno == errno.EINVAL
    with pytest.raises(UsageError, match="48 bytes, got 47"):
        extend_rtmr3(bytes(47), root=rtmr.mountpoint)
    assert rtmr.values[3] == ZERO


@needs_fuse
def test_boot_registers_refuse_writes(rtmr: EmulatedRtmr) -> None:
    for index in (0, 1):
        with pytest.raises(PermissionError):
            raw_write(rtmr.mountpoint / f"rtmr{index}:sha384", ZERO)
    assert raw_write(rtmr.mountpoint / "rtmr2:sha384", ZERO) == 48
    assert rtmr.values[2] == hashlib.sha384(ZERO + ZERO).digest()


@needs_fuse
def test_a_refusing_register_fails_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "measurements"
    path.mkdir()
    with (
        EmulatedRtmr(path, writable=(2,)) as dev,
        pytest.raises(AttestationError, match=r"cannot open .* to extend RTMR3"),
    ):
        extend_rtmr3(ZERO, root=dev.mountpoint)


@needs_fuse
def test_a_test_quote_maker_sees_the_registers(rtmr: EmulatedRtmr, tmp_path: Path) -> None:
    def make_evidence(report_data: bytes) -> tuple[bytes, bytes]:
        return b"TD" + b"".join(rtmr.values) + report_data, b""

    report = tmp_path / "report"
    report.mkdir()
    measure_app(APP1, log=tmp_path / "log", root=rtmr.mountpoint)
    with EmulatedTsm(report, "tdx_guest", make_evidence) as tsm:
        quote = ConfigfsTsmProducer("tdx", root=tsm.mountpoint).evidence(bytes(64)).data
    assert quote[2 + 3 * 48 : 2 + 4 * 48] == expected_rtmr3([APP1])


def test_an_absent_interface_gives_none(tmp_path: Path) -> None:
    absent = tmp_path / "no-tdx"
    assert extend_rtmr3(ZERO, root=absent) is None
    assert read_rtmr(3, root=absent) is None
    log = tmp_path / "rtmr.log"
    assert measure_app(APP1, log=log, root=absent) is None
    assert not log.exists()  # nothing extended, nothing logged


# -- digests, replay and the log -------------------------------------------------------------


def test_replay_is_sha384_of_old_and_new() -> None:
    a, b = hashlib.sha384(b"a").digest(), hashlib.sha384(b"b").digest()
    assert replay_rtmr([]) == ZERO
    assert replay_rtmr([a, b]) == hashlib.sha384(hashlib.sha384(ZERO + a).digest() + b).digest()
    assert replay_rtmr([b], initial=a) == hashlib.sha384(a + b).digest()
    with pytest.raises(UsageError):
        replay_rtmr([b"short"])


def test_the_app_digest_is_domain_separated() -> None:
    assert app_event_digest(APP1) == hashlib.sha384(b"securetf.app\x00" + APP1).digest()
    assert app_event_digest(APP1) != hashlib.sha384(APP1).digest()
    with pytest.raises(UsageError, match="32 bytes"):
        app_event_digest(b"x" * 48)


def test_the_log_line_format() -> None:
    line = app_event(APP1).to_json()
    assert json.loads(line) == {
        "rtmr": 3,
        "digest": app_event_digest(APP1).hex(),
        "event": APP_EVENT,
        "measurement": "sha256:" + APP1.hex(),
    }
    assert RtmrEvent.from_json(line) == app_event(APP1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest": "00" * 48}, "does not match"),
        ({"measurement": "sha256:" + "0" * 63}, "is not sha256"),
        ({"rtmr": 4}, "names register 4"),
        ({"rtmr": True}, "names register True"),
        ({"digest": "AB" * 48}, "96 lower-case hex"),
        ({"extra": 1}, "lacks or adds"),
    ],
)
def test_a_bad_log_line_is_refused(change: dict[str, object], message: str) -> None:
    record = json.loads(app_event(APP1).to_json()) | change
    with pytest.raises(AttestationError, match=message):
        read_event_log([json.dumps(record)])


def test_replay_uses_only_the_named_register() -> None:
    other = RtmrEvent(2, hashlib.sha384(b"os").digest(), "os.thing", "")
    events = read_event_log(["", app_event(APP1).to_json(), other.to_json()])
    assert replay_event_log(events) == expected_rtmr3([APP1])
    assert replay_event_log(events, rtmr=2) == replay_rtmr([other.digest])

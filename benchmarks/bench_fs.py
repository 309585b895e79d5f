"""The file system shield: reading a large file through the FUSE mount, cold and warm,
beside Debian's gocryptfs reading the same file in the same run, and the plain disk.

Run: python -m benchmarks.run fs   (or ``make bench``; needs root, /dev/fuse, gocryptfs)

Cold means: page cache dropped (``echo 3 > /proc/sys/vm/drop_caches``) and the file system
freshly mounted; warm means read again right after. Reads are ``dd bs=1M`` to /dev/null in
a child process, as a program would read. Set SECURETF_BENCH_DISK to measure another disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from benchmarks._common import Row
from securetf.shield.fs import mount
from securetf.volume import Volume, VolumeKey, seal_tree

SIZE = 1024 * 1024 * 1024
MB = 1e6
REPEAT = 2
NAME = "big.bin"

Mounter = Callable[[], AbstractContextManager[Path]]


def _make_file(path: Path) -> None:
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _read_seconds(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True, capture_output=True)
    return time.perf_counter() - start


def _measure(mounted: Mounter) -> tuple[float, float]:
    """(cold, warm) throughput in MB/s, each the best of REPEAT."""
    cold = warm = float("inf")
    for _ in range(REPEAT):
        _drop_caches()
        with mounted() as root:
            cold = min(cold, _read_seconds(root / NAME))
            for _ in range(REPEAT):
                warm = min(warm, _read_seconds(root / NAME))
    return SIZE / cold / MB, SIZE / warm / MB


def _securetf(sealed: Path, key: VolumeKey, mnt: Path) -> Mounter:
    @contextmanager
    def mounted() -> Iterator[Path]:
        with Volume.open(sealed, key) as vol, mount(vol, mnt, read_only=True):
            yield mnt

    return mounted


def _gocryptfs(cipher: Path, passfile: Path, mnt: Path) -> Mounter:
    @contextmanager
    def mounted() -> Iterator[Path]:
        subprocess.run(
            ["gocryptfs", "-q", "-nosyslog", "-passfile", str(passfile), str(cipher), str(mnt)],
            check=True,
        )
        try:
            yield mnt
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=True)

    return mounted


def _plain(directory: Path) -> Mounter:
    @contextmanager
    def mounted() -> Iterator[Path]:
        yield directory

    return mounted


def _setup_gocryptfs(root: Path, plain: Path) -> Mounter:
    cipher, mnt, passfile = root / "gocryptfs.cipher", root / "gocryptfs.mnt", root / "pass"
    cipher.mkdir()
    mnt.mkdir()
    passfile.write_text("benchmark password\n")
    subprocess.run(
        ["gocryptfs", "-init", "-q", "-nosyslog", "-passfile", str(passfile), str(cipher)],
        check=True,
        capture_output=True,
    )
    mounted = _gocryptfs(cipher, passfile, mnt)
    with mounted() as target:
        shutil.copyfile(plain / NAME, target / NAME)
    return mounted


def run() -> list[Row]:
    if shutil.which("gocryptfs") is None:
        raise RuntimeError("gocryptfs is missing: run 'make apt' (Debian package gocryptfs)")
    key = VolumeKey.generate()
    with tempfile.TemporaryDirectory(dir=os.environ.get("SECURETF_BENCH_DISK")) as tmp:
        root = Path(tmp)
        plain = root / "plain"
        plain.mkdir()
        _make_file(plain / NAME)
        seal_tree(plain, root / "sealed", key)
        (root / "securetf.mnt").mkdir()
        gocryptfs = _setup_gocryptfs(root, plain)
        s_cold, s_warm = _measure(_securetf(root / "sealed", key, root / "securetf.mnt"))
        g_cold, g_warm = _measure(gocryptfs)
        p_cold, p_warm = _measure(_plain(plain))
    what = "read a 1 GiB file through the mount"
    return [
        Row("fs", f"{what}, cold", s_cold, "MB/s", "gocryptfs", g_cold, ">= 1.0"),
        Row("fs", f"{what}, warm", s_warm, "MB/s", "gocryptfs", g_warm, ">= 2.0"),
        Row("fs", f"{what}, cold", s_cold, "MB/s", "plain disk (reference)", p_cold),
        Row("fs", f"{what}, warm", s_warm, "MB/s", "plain disk (reference)", p_warm),
    ]

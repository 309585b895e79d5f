"""Sealed volumes: sealing and unsealing throughput, random reads, each beside a baseline
measured in the same run.

Run: python -m benchmarks.run volume   (or ``make bench``)

Throughput runs on tmpfs (/dev/shm) so that it measures the format's CPU cost against
``openssl speed``, a CPU figure; the durable seal (to disk, with its sync) runs beside
``cp`` + ``sync`` of the same file on the same disk.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._common import Row, median_of, openssl_gcm_bytes_per_second
from securetf.volume import Volume, VolumeKey, seal_tree, unseal_tree

BIG = 512 * 1024 * 1024
SMALL_FILES = 10_000
SMALL_SIZE = 2048
RANDOM_READS = 20_000
MB = 1e6
OPENSSL = "openssl speed aes-256-gcm (1 core)"


def _memory_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def _make_big(src: Path) -> None:
    src.mkdir()
    block = os.urandom(1024 * 1024)
    with open(src / "big.bin", "wb") as f:
        for _ in range(BIG // len(block)):
            f.write(block)


def _make_small(src: Path) -> None:
    for i in range(SMALL_FILES):
        d = src / f"d{i // 500:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_SIZE))


def _unseal_to_devnull(vol_dir: Path, key: VolumeKey) -> None:
    buf = bytearray(1024 * 1024)
    with (
        Volume.open(vol_dir, key) as vol,
        vol.open_file("big.bin") as f,
        open(os.devnull, "wb") as out,
    ):
        while n := f.readinto(buf):
            out.write(memoryview(buf)[:n])


def _random_reads(vol_dir: Path, key: VolumeKey) -> float:
    rng = random.Random(1)
    offsets = [rng.randrange(0, BIG - 4096) for _ in range(RANDOM_READS)]
    with Volume.open(vol_dir, key) as vol, vol.open_file("big.bin") as f:
        start = time.perf_counter()
        for off in offsets:
            f.seek(off)
            f.read(4096)
        return RANDOM_READS / (time.perf_counter() - start)


def _plain_random_reads(path: Path) -> float:
    rng = random.Random(1)
    offsets = [rng.randrange(0, BIG - 4096) for _ in range(RANDOM_READS)]
    with open(path, "rb", buffering=0) as f:
        start = time.perf_counter()
        for off in offsets:
            f.seek(off)
            f.read(4096)
        return RANDOM_READS / (time.perf_counter() - start)


def _fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _big_rows(root: Path, key: VolumeKey, openssl: float) -> list[Row]:
    _make_big(root / "big")
    sealed = root / "big.vol"

    def seal() -> None:
        _fresh(sealed)
        seal_tree(root / "big", sealed, key)

    t = median_of(seal, repeat=3)
    rows = [Row("volume", "seal a 512 MiB file", BIG / t / MB, "MB/s", OPENSSL, openssl, ">= 0.40")]
    t = median_of(lambda: _unseal_to_devnull(sealed, key), repeat=3)
    what = "unseal a 512 MiB file to /dev/null"
    rows.append(Row("volume", what, BIG / t / MB, "MB/s", OPENSSL, openssl, ">= 0.60"))
    plain = _plain_random_reads(root / "big" / "big.bin")
    reads = _random_reads(sealed, key)
    rows.append(
        Row("volume", "random 4 KiB reads", reads, "reads/s", "plain file (page cache)", plain)
    )
    _fresh(root / "big")
    _fresh(sealed)
    return rows


def _small_rows(root: Path, key: VolumeKey) -> list[Row]:
    _make_small(root / "small")
    small_vol, out, copy = root / "small.vol", root / "small.out", root / "small.copy"

    def seal() -> None:
        _fresh(small_vol)
        seal_tree(root / "small", small_vol, key)

    def unseal() -> None:
        _fresh(out)
        with Volume.open(small_vol, key) as vol:
            unseal_tree(vol, out)

    def plain_copy() -> None:
        _fresh(copy)
        shutil.copytree(root / "small", copy)

    base = median_of(plain_copy, repeat=2)
    name = f"{SMALL_FILES:,} files of 2 KiB"
    t_seal, t_unseal = median_of(seal, repeat=2), median_of(unseal, repeat=2)
    return [
        Row(
            "volume",
            f"seal {name}",
            SMALL_FILES / t_seal,
            "files/s",
            "shutil.copytree",
            SMALL_FILES / base,
        ),
        Row(
            "volume",
            f"unseal {name}",
            SMALL_FILES / t_unseal,
            "files/s",
            "shutil.copytree",
            SMALL_FILES / base,
        ),
    ]


def _durable_row(root: Path, key: VolumeKey) -> Row:
    _make_big(root / "big")
    sealed, copy = root / "big.vol", root / "big.copy"
    subprocess.run(["sync"], check=True)

    def seal() -> None:
        _fresh(sealed)
        seal_tree(root / "big", sealed, key)

    def cp_sync() -> None:
        _fresh(copy)
        subprocess.run(["cp", "-r", str(root / "big"), str(copy)], check=True)
        subprocess.run(["sync", "-f", str(copy)], check=True)

    base, t = median_of(cp_sync, repeat=2), median_of(seal, repeat=2)
    return Row(
        "volume",
        "seal a 512 MiB file to disk, durable",
        BIG / t / MB,
        "MB/s",
        "cp + sync",
        BIG / base / MB,
    )


def run() -> list[Row]:
    key = VolumeKey.generate()
    openssl = openssl_gcm_bytes_per_second() / MB
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=_memory_dir()) as tmp:
        rows += _big_rows(Path(tmp), key, openssl)
        rows += _small_rows(Path(tmp), key)
    with tempfile.TemporaryDirectory(dir=os.environ.get("SECURETF_BENCH_DISK")) as tmp:
        rows.append(_durable_row(Path(tmp), key))
    return rows

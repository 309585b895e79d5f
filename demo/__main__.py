"""``make demo``: the main securetf job end to end, printing each step and its command.

Today it runs the sealed-volume round trip: generate a key, seal a dataset, verify it,
add a file, detect tampering and a rollback, unseal. It exits non-zero if any check fails.
"""

from __future__ import annotations

import csv
import filecmp
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SECURETF = [sys.executable, "-m", "securetf.cli.main"]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def securetf(*args: str | Path, expect: int = 0) -> str:
    shown = " ".join(str(a) for a in args)
    print(f"$ securetf {shown}", flush=True)
    proc = subprocess.run([*SECURETF, *map(str, args)], capture_output=True, text=True, check=False)
    print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if proc.returncode != expect:
        raise SystemExit(f"demo failed: exit code {proc.returncode}, expected {expect}")
    return proc.stdout


def make_dataset(root: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - synthetic records, not secrets
    (root / "train").mkdir(parents=True)
    with open(root / "train" / "patients.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", "marker_a", "marker_b", "label"])
        for _ in range(20_000):
            a, b = rng.gauss(0, 1), rng.gauss(0, 1)
            w.writerow([rng.randint(20, 90), f"{a:.5f}", f"{b:.5f}", int(a + b > 0)])
    (root / "README.txt").write_text("confidential patient records\n")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="securetf-demo-"))
    try:
        data, vol, out, key = work / "data", work / "sealed", work / "unsealed", work / "vol.key"
        step("1. the data owner generates a volume key and seals a dataset")
        make_dataset(data)
        securetf("volume", "keygen", key)
        securetf("volume", "seal", data, vol, "--key-file", key)
        stored = b"".join(p.read_bytes() for p in vol.rglob("*") if p.is_file())
        if b"patients" in stored or b"marker_a" in stored:
            raise SystemExit("demo failed: plaintext visible in the sealed volume")
        print("storage holds only random-named objects; no name or record is visible")

        step("2. verify every byte, and note the volume's tag")
        tag1 = securetf("volume", "verify", vol, "--key-file", key).split("tag: ")[1].strip()
        securetf("volume", "ls", vol, "--key-file", key)

        step("3. add a file: a new version, a new tag")
        extra = work / "labels.txt"
        extra.write_text("0: benign\n1: malignant\n")
        securetf("volume", "put", vol, extra, "train/labels.txt", "--key-file", key)

        step("4. after version 3, storage serves the older version 2 again: refused")
        backup = work / "backup"
        shutil.copytree(vol, backup)
        securetf("volume", "put", vol, extra, "train/labels2.txt", "--key-file", key)
        tag3 = securetf("volume", "verify", vol, "--key-file", key).split("tag: ")[1].strip()
        shutil.rmtree(vol)
        shutil.copytree(backup, vol)
        securetf("volume", "verify", vol, "--key-file", key, "--expect-tag", tag3, expect=3)
        shutil.rmtree(vol)
        shutil.copytree(backup, vol)
        print(f"(version 1 was {tag1}; every state has its own tag)")

        step("5. storage flips one bit of the dataset: detected, nothing unsealed")
        biggest = max((p for p in vol.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        original = biggest.read_bytes()
        raw = bytearray(original)
        raw[len(raw) // 2] ^= 1
        biggest.write_bytes(raw)
        securetf("volume", "unseal", vol, out, "--key-file", key, expect=3)
        if out.exists():
            raise SystemExit("demo failed: partial plaintext left behind")
        biggest.write_bytes(
            bytes(raw[: len(raw) // 2])
            + bytes([raw[len(raw) // 2] ^ 1])
            + bytes(raw[len(raw) // 2 + 1 :])
        )

        step("6. the owner unseals the dataset: identical to the original")
        securetf("volume", "unseal", vol, out, "--key-file", key)
        cmp = filecmp.dircmp(data, out)
        same = filecmp.cmpfiles(data / "train", out / "train", ["patients.csv"], shallow=False)
        if cmp.left_only or cmp.diff_files or same[0] != ["patients.csv"]:
            raise SystemExit("demo failed: unsealed data differs")
        print("\ndemo passed: sealed, verified, versioned, tamper and rollback refused, unsealed")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

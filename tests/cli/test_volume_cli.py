"""The ``securetf volume`` commands as a user runs them: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from securetf.errors import AuthenticationError, IntegrityError, UsageError
from securetf.volume import VolumeKey
from tests.volume.forge import forge_volume

EXE = [sys.executable, "-m", "securetf.cli.main"]


def run(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "vol.key"
    run("volume", "keygen", path)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "train.csv").write_text("x,y\n1,2\n")
    (src / "blob.bin").write_bytes(os.urandom(200_000))
    return src


def test_keygen_writes_a_private_key_and_refuses_overwrite(keyfile: Path) -> None:
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert len(keyfile.read_bytes()) == 32
    again = run("volume", "keygen", keyfile, ok=False)
    assert again.returncode == UsageError.exit_code
    assert "exists already" in again.stderr


def test_full_cycle(tmp_path: Path, keyfile: Path, src: Path) -> None:
    vol, out = tmp_path / "vol", tmp_path / "out"
    sealed = run("volume", "seal", src, vol, "--key-file", keyfile)
    tag1 = sealed.stdout.split("tag: ")[1].strip()
    assert "sub/train.csv" in run("volume", "ls", vol, "--key-file", keyfile).stdout
    report = json.loads(run("volume", "verify", vol, "--key-file", keyfile, "--json").stdout)
    assert report == {"tag": tag1, "version": 1, "files": 2, "bytes": 200_008}
    extra = tmp_path / "extra.txt"
    extra.write_text("more")
    put = run("volume", "put", vol, extra, "sub/extra.txt", "--key-file", keyfile)
    assert "version: 2" in put.stdout
    run("volume", "unseal", vol, out, "--key-file", keyfile)
    assert (out / "sub/extra.txt").read_text() == "more"
    assert (out / "blob.bin").read_bytes() == (src / "blob.bin").read_bytes()
    # The old tag now names a state the volume has left: an expectation of it fails.
    old = run("volume", "verify", vol, "--key-file", keyfile, "--expect-tag", tag1, ok=False)
    assert old.returncode == IntegrityError.exit_code
    assert "rolled back" in old.stderr


def test_seal_refuses_existing_destination(tmp_path: Path, keyfile: Path, src: Path) -> None:
    dst = tmp_path / "exists"
    dst.mkdir()
    proc = run("volume", "seal", src, dst, "--key-file", keyfile, ok=False)
    assert proc.returncode == UsageError.exit_code
    assert "exists already" in proc.stderr


def test_clear_errors(tmp_path: Path, keyfile: Path, src: Path) -> None:
    vol = tmp_path / "vol"
    run("volume", "seal", src, vol, "--key-file", keyfile)
    other = tmp_path / "other.key"
    run("volume", "keygen", other)
    cases = [
        (("volume", "ls", vol, "--key-file", other), AuthenticationError.exit_code, "wrong key"),
        (("volume", "ls", tmp_path / "nope", "--key-file", keyfile), 2, "no volume"),
        (("volume", "ls", src, "--key-file", keyfile), 2, "not a sealed volume"),
        (("volume", "ls", vol, "--key-file", src / "blob.bin"), 2, "not a volume key"),
        (
            ("volume", "seal", src / "blob.bin", tmp_path / "v2", "--key-file", keyfile),
            2,
            "directory",
        ),
    ]
    for args, code, message in cases:
        proc = run(*args, ok=False)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_corrupted_manifest_and_tampered_data(tmp_path: Path, keyfile: Path, src: Path) -> None:
    vol, out = tmp_path / "vol", tmp_path / "out"
    run("volume", "seal", src, vol, "--key-file", keyfile)
    objects = sorted(p for p in (vol / "objects").rglob("*") if p.is_file())
    biggest = max(objects, key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[100_000] ^= 0x40
    biggest.write_bytes(data)
    proc = run("volume", "unseal", vol, out, "--key-file", keyfile, ok=False)
    assert proc.returncode == IntegrityError.exit_code
    assert "integrity check failed" in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "vol", "vol.key"]
    manifest = vol / "securetf-volume"
    raw = bytearray(manifest.read_bytes())
    raw[-1] ^= 1
    manifest.write_bytes(raw)
    proc = run("volume", "verify", vol, "--key-file", keyfile, ok=False)
    assert proc.returncode == IntegrityError.exit_code


def _refused_with_nothing_left(proc: subprocess.CompletedProcess[str], out: Path) -> None:
    assert proc.returncode == IntegrityError.exit_code, proc.stderr
    assert "integrity check failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_unseal_refuses_an_extended_object(tmp_path: Path, keyfile: Path, src: Path) -> None:
    vol, out = tmp_path / "vol", tmp_path / "out"
    run("volume", "seal", src, vol, "--key-file", keyfile)
    for obj in sorted(p for p in (vol / "objects").rglob("*") if p.is_file()):
        original = obj.read_bytes()
        obj.write_bytes(original + os.urandom(4112))  # one more record's worth
        for command in (("verify", vol), ("unseal", vol, out)):
            proc = run("volume", *command, "--key-file", keyfile, ok=False)
            _refused_with_nothing_left(proc, out)
        obj.write_bytes(original)
    run("volume", "unseal", vol, out, "--key-file", keyfile)


def _alias(vol: Path, entry: dict[str, Any], path: str) -> dict[str, Any]:
    """Another entry for ``path``, with its own object (a copy of ``entry``'s), so that it
    passes every check but the tree's: unseal would get as far as creating it."""
    oid = os.urandom(16).hex()
    old, new = (vol / "objects" / o[:2] / o[2:] for o in (entry["object"], oid))
    new.parent.mkdir(exist_ok=True)
    new.write_bytes(old.read_bytes())
    return {**entry, "object": oid, "path": path}


@pytest.mark.parametrize(
    "change",
    [
        "dir at a file's path",
        "file under a file",
        "dir under a file",
        "duplicate file",
        "duplicate dir",
    ],
)
def test_unseal_refuses_a_forged_tree(
    tmp_path: Path, keyfile: Path, src: Path, change: str
) -> None:
    vol, out = tmp_path / "vol", tmp_path / "out"
    run("volume", "seal", src, vol, "--key-file", keyfile)

    def edit(body: dict[str, Any]) -> None:
        files = body["files"]
        first = files[0]["path"]  # blob.bin
        if change == "dir at a file's path":
            body["dirs"].append(first)
        elif change == "file under a file":
            files.append(_alias(vol, files[1], first + "/inner"))
        elif change == "dir under a file":
            body["dirs"].append(first + "/inner")
        elif change == "duplicate file":
            files.append(_alias(vol, files[1], first))
        else:
            body["dirs"] += ["sub", "sub"]

    forge_volume(vol, VolumeKey.from_file(keyfile), edit)
    for command in (("unseal", vol, out), ("ls", vol), ("verify", vol)):
        proc = run("volume", *command, "--key-file", keyfile, ok=False)
        _refused_with_nothing_left(proc, out)


def test_unseal_that_cannot_write_its_output_fails_cleanly(
    tmp_path: Path, keyfile: Path, src: Path
) -> None:
    # The name fits, the hidden name beside it does not: the file system refuses a write.
    vol, out = tmp_path / "vol", tmp_path / ("o" * 240)
    run("volume", "seal", src, vol, "--key-file", keyfile)
    proc = run("volume", "unseal", vol, out, "--key-file", keyfile, ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot write the plaintext to {out}" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "vol", "vol.key"]

"""Mounting and unmounting: preflight errors, commit, a sure unmount, private namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from securetf.errors import UsageError
from securetf.shield.fs import FuseUnavailableError, check_fuse, mount
from securetf.volume import Volume, VolumeKey

from .conftest import mounted_paths


def test_missing_device_fails_at_once_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FuseUnavailableError, match="/nonexistent/fuse does not exist"):
        check_fuse(Path("/nonexistent/fuse"))


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_unprivileged_process_is_told_what_it_lacks(tmp_path: Path) -> None:
    code = "from securetf.shield.fs import check_fuse; check_fuse()"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")},
    )
    assert done.returncode != 0
    assert "cannot open /dev/fuse" in done.stderr or "fusermount3" in done.stderr


def test_mountpoint_must_be_empty(sealed: Path, key: VolumeKey, mnt: Path) -> None:
    (mnt / "x").write_text("x")
    with Volume.open(sealed, key) as vol, pytest.raises(FuseUnavailableError, match="empty"):
        mount(vol, mnt, read_only=True)
    (mnt / "x").unlink()


def test_writable_mount_needs_writable_volume(sealed: Path, key: VolumeKey, mnt: Path) -> None:
    with Volume.open(sealed, key) as vol, pytest.raises(UsageError, match="writable=True"):
        mount(vol, mnt, read_only=False)


def test_commit_then_unmount_returns_tags_that_open(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        m = mount(vol, mnt, read_only=False)
        (mnt / "one.txt").write_text("1")
        with open(mnt / "two.txt", "w") as still_open:
            still_open.write("2")
            still_open.flush()
            first = m.commit()  # commits the open file's content so far
        (mnt / "three.txt").write_text("3")
        second = m.unmount()
    assert str(mnt) not in mounted_paths()
    assert first != second
    with Volume.open(sealed, key, expect_tag=second) as vol:
        vol.verify()
        assert {f.path for f in vol.files()} >= {"one.txt", "two.txt", "three.txt"}
        assert vol.open_file("two.txt").read() == b"2"


def test_unmount_is_clean_while_a_program_holds_files(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    hold = "import sys,time; f=open(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    with Volume.open(sealed, key) as vol:
        m = mount(vol, mnt, read_only=True)
        holder = subprocess.Popen(
            [sys.executable, "-c", hold, str(mnt / "data" / "hello.txt")], stdout=subprocess.PIPE
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"
            assert m.unmount() is None
            assert str(mnt) not in mounted_paths()
        finally:
            holder.kill()
            holder.wait()


def test_mount_in_private_namespace_is_invisible_to_the_host(
    sealed: Path, key: VolumeKey, mnt: Path, tmp_path: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    code = (
        "import sys; from pathlib import Path\n"
        "from securetf.shield.fs import mount\n"
        "from securetf.volume import Volume, VolumeKey\n"
        "vol = Volume.open(Path(sys.argv[1]), VolumeKey(bytes(range(32))))\n"
        "with mount(vol, Path(sys.argv[2]), read_only=True):\n"
        "    print((Path(sys.argv[2]) / 'data/hello.txt').read_text(), end='', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            code,
            str(sealed),
            str(mnt),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        assert child.stdout.readline() == b"hello, shield\n"  # mounted in there ...
        assert str(mnt) not in mounted_paths()  # ... and not here
        assert os.listdir(mnt) == []
    finally:
        child.stdin.close()
        assert child.wait(timeout=30) == 0


def test_unmount_without_commit_commits_only_the_kept_file(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    """A failed run's log: appended and committed; what else it wrote is dropped."""
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        m = mount(vol, mnt, read_only=False)
        (mnt / "logs").mkdir()
        with open(mnt / "logs" / "run.log", "ab") as log:
            log.write(b"the log\n")
        (mnt / "data" / "hello.txt").write_text("half-written")
        assert m.unmount(commit=False, keep=["logs/run.log"]) not in (None, tag)
    with Volume.open(sealed, key) as vol:
        vol.verify()
        assert vol.open_file("logs/run.log").read() == b"the log\n"
        assert vol.open_file("data/hello.txt").read() == b"hello, shield\n"


def test_unmount_keeps_a_kept_file_still_held_open(sealed: Path, key: VolumeKey, mnt: Path) -> None:
    """Writes of a kept file count even when the release of its last handle has not
    arrived (here: a process still holds it); those of other held files are dropped."""
    hold = (
        "import sys, time\n"
        "files = [open(p, 'ab') for p in sys.argv[1:]]\n"
        "for f in files: f.write(b'written\\n'); f.flush()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    with Volume.open(sealed, key, writable=True) as vol:
        m = mount(vol, mnt, read_only=False)
        holder = subprocess.Popen(
            [sys.executable, "-c", hold, str(mnt / "kept.log"), str(mnt / "other.log")],
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"
            assert m.unmount(commit=True, keep=["kept.log"]) is not None
        finally:
            holder.kill()
            holder.wait()
    with Volume.open(sealed, key) as vol:
        assert vol.open_file("kept.log").read() == b"written\n"
        assert not vol.exists("other.log")


def test_unmount_without_commit_and_nothing_kept_commits_nothing(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        m = mount(vol, mnt, read_only=False)
        (mnt / "data" / "hello.txt").write_text("half-written")
        assert m.unmount(commit=False, keep=["logs/run.log"]) is None
    with Volume.open(sealed, key) as vol:
        assert vol.tag == tag

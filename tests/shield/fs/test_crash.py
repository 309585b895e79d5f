"""A writer killed mid-write leaves the volume at its previous state, and the next mount works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from securetf.shield.fs import mount
from securetf.volume import Volume, VolumeKey

from .conftest import mounted_paths

_PRIVATE = ["unshare", "-m", "--propagation", "private"]
_WRITE_FOREVER = (
    "import sys\n"
    "f = open(sys.argv[1], 'wb')\n"
    "block = b'secret model weights ' * 50000\n"
    "f.write(block); f.flush(); print('writing', flush=True)\n"
    "while True:\n"
    "    f.write(block)\n"
)


def _wait_for(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    time.sleep(0.3)


def test_program_killed_mid_write_leaves_previous_state(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    with Volume.open(sealed, key) as vol:
        before = vol.tag
    with Volume.open(sealed, key, writable=True) as vol:
        m = mount(vol, mnt, read_only=False)
        target = str(mnt / "data" / "hello.txt")
        writer = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, target], stdout=-1)
        _wait_for(writer)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        # The runtime sees the program die and does not commit what it wrote.
        assert m.unmount(commit=False) is None
    with Volume.open(sealed, key, expect_tag=before) as vol:
        vol.verify()
        assert vol.open_file("data/hello.txt").read() == b"hello, shield\n"
    with Volume.open(sealed, key, writable=True) as vol, mount(vol, mnt, read_only=False):
        (mnt / "data" / "hello.txt").write_bytes(b"next run\n")
    with Volume.open(sealed, key) as vol:
        assert vol.open_file("data/hello.txt").read() == b"next run\n"


# The runtime's shape: this process hosts the mount, a child process writes through it.
_MOUNT_AND_RUN = (
    "import subprocess, sys\n"
    "from pathlib import Path\n"
    "from securetf.shield.fs import mount\n"
    "from securetf.volume import Volume, VolumeKey\n"
    "vol = Volume.open(Path(sys.argv[1]), VolumeKey(bytes(range(32))), writable=True)\n"
    "m = mount(vol, Path(sys.argv[2]), read_only=False)\n"
    "subprocess.run([sys.executable, '-c', sys.argv[3], sys.argv[2] + '/model.bin'])\n"
)


def test_whole_runtime_killed_mid_write_leaves_previous_state(
    sealed: Path, key: VolumeKey, mnt: Path
) -> None:
    """The process hosting the mount dies (kill -9) with its program, in a private namespace."""
    with Volume.open(sealed, key) as vol:
        before = vol.tag
    host = subprocess.Popen(
        [*_PRIVATE, sys.executable, "-c", _MOUNT_AND_RUN, str(sealed), str(mnt), _WRITE_FOREVER],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for(host)
    os.killpg(host.pid, signal.SIGKILL)
    host.wait()
    assert str(mnt) not in mounted_paths()
    with Volume.open(sealed, key, expect_tag=before) as vol:
        vol.verify()
        assert not vol.exists("model.bin")
    with Volume.open(sealed, key, writable=True) as vol, mount(vol, mnt, read_only=False) as m:
        (mnt / "model.bin").write_bytes(b"weights")
        tag = m.commit()
    with Volume.open(sealed, key, expect_tag=tag) as vol:
        assert vol.open_file("model.bin").read() == b"weights"

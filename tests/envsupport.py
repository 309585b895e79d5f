"""A small real Python environment for the environment image's tests.

A venv of the interpreter the tests run on (its base Python), without pip, holding one
module of its own; packed with the base's big parts that no test imports left out.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from securetf.envimage import pack

_STDLIB = sysconfig.get_paths(vars={"installed_base": sys.base_prefix})["stdlib"]
#: What the tests' programs never import: Python's own tests, GUIs, compilers' files.
EXCLUDE = tuple(
    f"{_STDLIB}/{name}"
    for name in (
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "unittest/test",
        "config-*",
    )
)
#: The module the venv holds, and what it prints when imported and run.
PROBE = "securetf_probe"
PROBE_SOURCE = "import sys\nMARK = 'probe-from-image'\nprint(MARK, sys.prefix)\n"


def make_venv(where: Path) -> Path:
    """A venv at ``where`` (a fresh path) with the probe module in its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next(where.glob("lib/python*/site-packages"))
    (site / f"{PROBE}.py").write_text(PROBE_SOURCE)
    return where


def make_image(venv: Path, image: Path) -> bytes:
    """Pack ``venv`` into ``image``; its measurement."""
    return pack(venv, image, EXCLUDE)


@dataclass(frozen=True)
class Packed:
    """A venv and its image (the ``packed_env`` fixture)."""

    venv: Path
    image: Path
    digest: bytes

"""The log package hands on exactly its ``__all__``."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import securetf.log as log


def test_public_names_are_exactly_all() -> None:
    public = {
        n
        for n, v in vars(log).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)  # securetf.log.sql
    }
    assert public == set(log.__all__)
    assert len(set(log.__all__)) == len(log.__all__)


def test_verifying_does_not_load_sqlalchemy() -> None:
    # A client that only verifies imports securetf.log; the SQL store is securetf.log.sql.
    code = "import sys, securetf.log; print('sqlalchemy' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr

from __future__ import annotations

import pytest

from securetf import _logutil
from tests.envsupport import Packed, make_image, make_venv


@pytest.fixture(autouse=True)
def _fresh_loud_warnings() -> None:
    """Each test sees the loud warnings its code triggers, whatever ran before it."""
    _logutil._last.clear()


@pytest.fixture(scope="session")
def packed_env(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    """A small venv packed into an environment image (once per session and worker)."""
    base = tmp_path_factory.mktemp("env")
    venv = make_venv(base / "venv")
    image = base / "env.img"
    return Packed(venv, image, make_image(venv, image))

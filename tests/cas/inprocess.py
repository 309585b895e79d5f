"""The CAS's real HTTPS server (uvicorn, TLS, every limit) run in a thread of the tests.

Unlike :class:`tests.cas.server_support.CasProcess`, it takes any :class:`CasSettings`, so
tests can set limits of a second and see them act within seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from securetf.cas.server import ServeOptions, http_server
from securetf.cas.settings import CasSettings
from tests._http.attacks import Target, running
from tests.ports import free_port


@contextmanager
def running_cas(tmp: Path, settings: CasSettings) -> Iterator[Target]:
    """A CAS with its data and sim platform key under ``tmp``, until the block ends."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECURETF_HOME", str(tmp / "home"))
        options = ServeOptions(data_dir=tmp / "cas", port=free_port(), settings=settings)
        with running(http_server(options)):
            yield Target("127.0.0.1", options.port)

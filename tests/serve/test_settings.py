"""Where the TLS material comes from; plain HTTP only when asked, and loudly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from securetf.errors import UsageError
from securetf.serve import ServeSettings, resolve_tls
from tests.serve.support import TestCa


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    tls = TestCa.create().instance(tmp_path)
    return tls.cert, tls.key


def test_the_runtime_certificate_is_the_default(pair: tuple[Path, Path], tmp_path: Path) -> None:
    env = {"SECURETF_TLS_CERT": str(pair[0]), "SECURETF_TLS_KEY": str(pair[1])}
    tls = resolve_tls(ServeSettings(model_dir=tmp_path), env)
    assert tls is not None
    assert (tls.cert, tls.key) == pair
    assert tls.client_ca is None


def test_flags_win_over_the_environment(pair: tuple[Path, Path], tmp_path: Path) -> None:
    env = {"SECURETF_TLS_CERT": "/nonexistent", "SECURETF_TLS_KEY": "/nonexistent"}
    settings = ServeSettings(model_dir=tmp_path, tls_cert=pair[0], tls_key=pair[1])
    tls = resolve_tls(settings, env)
    assert tls is not None
    assert tls.cert == pair[0]


def test_no_certificate_and_no_opt_out_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="insecure-no-tls"):
        resolve_tls(ServeSettings(model_dir=tmp_path), {})


def test_a_certificate_without_its_key_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="go together"):
        resolve_tls(ServeSettings(model_dir=tmp_path, tls_cert=pair[0]), {})


def test_plain_http_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert resolve_tls(ServeSettings(model_dir=tmp_path, insecure_no_tls=True), {}) is None
    assert "WITHOUT TLS" in caplog.text


def test_plain_http_with_tls_options_is_contradictory(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = ServeSettings(
        model_dir=tmp_path, insecure_no_tls=True, tls_cert=pair[0], tls_key=pair[1]
    )
    with pytest.raises(UsageError):
        resolve_tls(settings, {})


@pytest.mark.parametrize(
    "bad",
    [{"port": 0}, {"grpc_port": 8501}, {"max_batch_size": 0}, {"batch_timeout_ms": -1}],
)
def test_bad_settings_are_refused(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        ServeSettings(model_dir=tmp_path, **bad).check()  # type: ignore[arg-type]


def test_public_names() -> None:
    """Exactly __all__ is public; each name resolves (the package hands them on lazily)."""
    import securetf.serve as serve

    public = {
        n
        for n, v in vars(serve).items()
        if not n.startswith("_")
        and n not in {"annotations", "TYPE_CHECKING"}
        and not isinstance(v, type(serve))  # submodules, once loaded
    }
    assert public <= set(serve.__all__)
    assert all(getattr(serve, name) is not None for name in serve.__all__)
    with pytest.raises(AttributeError):
        _ = serve.not_a_name

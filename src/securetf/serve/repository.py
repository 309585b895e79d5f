"""The model directory, laid out as TensorFlow Serving's: ``NAME/VERSION/<model files>``.

A version directory holds a SavedModel (``saved_model.pb``), one ``.keras`` file or one
``.tflite`` file. Every version found is loaded at start; a request names a version or
gets the newest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from securetf.errors import NotFoundError, UsageError
from securetf.serve.batching import Batcher
from securetf.serve.signature import LoadedModel

log = logging.getLogger(__name__)

__all__ = ["ModelRepository", "ServedModel", "detect_format", "load_model"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ServedModel:
    """One loaded version of one model, with the batcher that is its only caller."""

    name: str
    version: int
    model: LoadedModel
    batcher: Batcher


def detect_format(version_dir: Path) -> tuple[str, Path]:
    """The format of a version directory and the path its loader takes."""
    if (version_dir / "saved_model.pb").is_file() or (version_dir / "saved_model.pbtxt").is_file():
        return "saved_model", version_dir
    for suffix, fmt in ((".keras", "keras"), (".tflite", "tflite")):
        found = sorted(p for p in version_dir.iterdir() if p.suffix == suffix and p.is_file())
        if len(found) > 1:
            raise UsageError(f"{version_dir} holds more than one {suffix} file")
        if found:
            return fmt, found[0]
    raise UsageError(f"{version_dir} holds no SavedModel, .keras or .tflite model")


def load_model(version_dir: Path) -> LoadedModel:
    """Load one version directory with the backend its format needs."""
    fmt, path = detect_format(version_dir)
    if fmt == "saved_model":
        from securetf.serve._savedmodel import SavedModelBackend

        return SavedModelBackend(path)
    if fmt == "keras":
        from securetf.serve._keras import KerasBackend

        return KerasBackend(path)
    from securetf.serve._tflite import TfliteBackend

    return TfliteBackend(path)


def _versions(model_dir: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in model_dir.iterdir():
        # isascii: a directory named "²" passes isdigit but not int().
        if p.is_dir() and p.name.isascii() and p.name.isdigit() and int(p.name) > 0:
            out[int(p.name)] = p
    return out


def _describe(name: str, version: int | None) -> str:
    return f"Latest({name})" if version is None else f"Specific({name}, {version})"


class ModelRepository:
    """Every model version under a directory, loaded, each behind its own batcher."""

    def __init__(self, models: dict[str, dict[int, ServedModel]]) -> None:
        self._models = models

    @classmethod
    def load(
        cls,
        root: Path,
        *,
        max_batch_size: int,
        batch_timeout: float,
        on_batch: Callable[[str, int, int], None] = lambda model, rows, requests: None,
    ) -> ModelRepository:
        if not root.is_dir():
            raise NotFoundError(f"model directory {root} does not exist")
        models: dict[str, dict[int, ServedModel]] = {}
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            name = model_dir.name
            if not _NAME.match(name):
                log.warning("skipping %s: not a valid model name", model_dir)
                continue
            versions = _versions(model_dir)
            if not versions:
                log.warning("skipping %s: no numbered version directory", model_dir)
                continue
            loaded: dict[int, ServedModel] = {}
            for version, path in sorted(versions.items()):
                model = load_model(path)

                def record(rows: int, requests: int, _name: str = name) -> None:
                    on_batch(_name, rows, requests)

                batcher = Batcher(
                    model,
                    max_batch_size=max_batch_size,
                    timeout=batch_timeout,
                    on_batch=record,
                    name=f"{name}-{version}",
                )
                loaded[version] = ServedModel(name, version, model, batcher)
                log.info("loaded %s version %d (%s)", name, version, model.format)
            models[name] = loaded
        if not models:
            raise UsageError(f"no model found under {root} (expected NAME/VERSION/...)")
        return cls(models)

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ServedModel]:
        """Every loaded version of ``name``, newest first."""
        if name not in self._models:
            raise NotFoundError(f"Servable not found for request: {_describe(name, None)}")
        return [self._models[name][v] for v in sorted(self._models[name], reverse=True)]

    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The requested version, or the newest; :class:`NotFoundError` in TF Serving's words."""
        found = self._models.get(name)
        if not found or (version is not None and version not in found):
            raise NotFoundError(f"Servable not found for request: {_describe(name, version)}")
        return found[max(found) if version is None else version]

    def close(self) -> None:
        for versions in self._models.values():
            for served in versions.values():
                served.batcher.close()

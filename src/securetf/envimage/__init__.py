"""Measured environment images: a Python environment as a read-only, verified file system.

``securetf env pack`` builds one (:mod:`._pack`); the runtime mounts it through the file
system shield, checking each chunk it reads (:mod:`securetf.shield.fs`). The format is
specified in docs/env-image.md.
"""

import typing as _typing

from securetf._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from securetf.envimage._format import EnvImage, ImageMeta, measurement_text
    from securetf.envimage._pack import describe, pack

#: Each name is imported from its module on first use: the runtime opens images and
#: never packs one.
_WHERE: dict[str, str] = {
    "EnvImage": "_format",
    "ImageMeta": "_format",
    "measurement_text": "_format",
    "describe": "_pack",
    "pack": "_pack",
}

__all__ = ["EnvImage", "ImageMeta", "describe", "measurement_text", "pack"]


__getattr__ = _lazy_names(__name__, _WHERE)

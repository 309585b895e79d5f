"""Measured environment images: a Python environment as a read-only, verified file system.

``securetf env pack`` builds one (:mod:`._pack`); the runtime mounts it through the file
system shield, checking each chunk it reads (:mod:`securetf.shield.fs`). The format is
specified in docs/env-image.md.
"""

from securetf.envimage._format import EnvImage, ImageMeta, measurement_text
from securetf.envimage._pack import describe, pack

__all__ = ["EnvImage", "ImageMeta", "describe", "measurement_text", "pack"]

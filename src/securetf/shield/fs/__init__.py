"""The file system shield: a sealed volume shown to a program as plain files, over FUSE.

See docs/fs-shield.md for what it guarantees and how commit and unmount work.
"""

from securetf.shield.fs._image import ImageMount, mount_image
from securetf.shield.fs._mount import Mount, mount
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse

__all__ = ["FuseUnavailableError", "ImageMount", "Mount", "check_fuse", "mount", "mount_image"]

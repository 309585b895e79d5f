"""The file system shield: a sealed volume shown to a program as plain files, over FUSE.

See docs/fs-shield.md for what it guarantees and how commit and unmount work.
"""

from securetf.shield.fs._image import ImageMount, mount_image
from securetf.shield.fs._mount import Mount, mount
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse
from securetf.shield.fs._shared_image import ImageServer, SharedImage, shared_image

__all__ = [
    "FuseUnavailableError",
    "ImageMount",
    "ImageServer",
    "Mount",
    "SharedImage",
    "check_fuse",
    "mount",
    "mount_image",
    "shared_image",
]

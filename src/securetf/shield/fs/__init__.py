"""The file system shield: a sealed volume shown to a program as plain files, over FUSE.

See docs/fs-shield.md for what it guarantees and how commit and unmount work.
"""

from securetf.shield.fs._mount import Mount, mount
from securetf.shield.fs._preflight import FuseUnavailableError, check_fuse

__all__ = ["FuseUnavailableError", "Mount", "check_fuse", "mount"]

"""The shields: what the runtime puts between an unmodified program and untrusted storage.

Only the file system shield exists so far (:mod:`securetf.shield.fs`).
"""

from securetf.shield.fs import FuseUnavailableError, Mount, check_fuse, mount

__all__ = ["FuseUnavailableError", "Mount", "check_fuse", "mount"]
